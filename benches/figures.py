"""Figures of measure.py records (raw.jsonl), shared by the bench scripts' ratio tables."""
import json
import statistics


def load(path):
    """The last record of each label in a measure.py raw.jsonl."""
    recs = {}
    for line in open(path):
        if line.strip():
            r = json.loads(line)
            recs[r["label"]] = r
    return recs


def fig(recs, label):
    """Runs that exited 0 in time: warm = median wall of the warm runs, cold = the first cold run's wall,
    anon = median peak RssAnon (MiB) of the warm runs (or all), anon_max = the highest, rss = median peak RSS."""
    r = recs.get(label)
    if not r:
        return None
    ok = [x for x in r["runs"] if x.get("exit_status") == 0 and not x.get("timed_out")]
    warm = [x for x in ok if not x["cold"]]
    cold = [x for x in ok if x["cold"]]
    return dict(warm=statistics.median(x["wall_s"] for x in warm) if warm else None,
                cold=cold[0]["wall_s"] if cold else None,
                anon=statistics.median(x["peak_rss_anon_kb"] for x in (warm or ok)) / 1024 if ok else None,
                anon_max=max(x["peak_rss_anon_kb"] for x in ok) / 1024 if ok else None,
                rss=statistics.median(x["max_rss_kb"] for x in (warm or ok)) / 1024 if ok else None)
