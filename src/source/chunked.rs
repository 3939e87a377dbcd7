//! Arrays stored as a grid of separately decoded chunks (compressed TIFF strips/tiles, later Zarr): the
//! chunk grid, an LRU cache of decoded chunks under a byte budget, and `read_region`/`sample_grid`
//! assembled from just the chunks a request overlaps, the missing ones decoded in parallel.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use super::{ArraySource, RegionBuf, SourceInfo};
use crate::error::{Error, Result};
use crate::geom::Rect;

/// The decoded-chunk cache budget when the caller names none.
pub const DEFAULT_BUDGET: u64 = 256 << 20;

/// One decoded chunk: `rows` rows of `row_pixels` pixels of `samples` native-order elements each (edge
/// chunks may be padded past the image, as TIFF tiles are).
#[derive(Debug, Clone)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    pub row_pixels: usize,
    pub rows: usize,
    pub samples: usize,
}

/// What a chunked format provides: where a slice's chunks are, and how to decode one.
pub trait ChunkDecoder: Send + Sync {
    /// The chunk group (e.g. a TIFF page or sample plane) holding `slice`, and the first sample of each
    /// decoded pixel that the slice shows (the slice shows `info.image.channels` samples from there).
    fn locate(&self, slice: u64) -> (u64, usize);
    /// Decodes chunk (`cy`, `cx`) of `group`.
    fn decode(&self, group: u64, cy: u64, cx: u64) -> Result<Chunk>;

    /// Decodes chunk (`cy`, `cx`) of `group` with access to the decoded-chunk cache: a decoder that
    /// streams (one long compressed strip) looks there first and stores the chunks it passes on the way.
    fn decode_cached(&self, group: u64, cy: u64, cx: u64, _cache: &dyn ChunkCache) -> Result<Arc<Chunk>> {
        self.decode(group, cy, cx).map(Arc::new)
    }

    /// Whether [`ChunkDecoder::decode_head`] gives the first rows of a chunk for a fraction of the cost of
    /// the whole (a compressed stream stopped early), so that a preview should read rows near the top of
    /// each chunk row rather than at the centre of each block.
    fn cheap_heads(&self) -> bool {
        false
    }

    /// Decodes only the first `rows` rows of chunk (`cy`, `cx`) of `group` (fewer if the chunk has fewer);
    /// `None` when this decoder cannot stop early (then the whole chunk is decoded).
    fn decode_head(&self, _group: u64, _cy: u64, _cx: u64, _rows: usize) -> Result<Option<Chunk>> {
        Ok(None)
    }

    /// Announces that chunk (`cy`, `cx`) of `group` (its first `head` rows, or all of it) is decoded
    /// soon, so that its bytes are read from disk while other chunks decode. Advice only.
    fn will_need(&self, _group: u64, _cy: u64, _cx: u64, _head: Option<usize>) {}
}

/// The fewest rows a head decode asks for (later, deeper reads of the chunk then rarely decode it again).
const MIN_HEAD_ROWS: usize = 16;

/// Whether a read that needs the first `need` rows of chunks `chunk_h` rows tall decodes just a head of
/// them (at most a quarter of the chunk, after rounding up) rather than whole chunks, where the decoder
/// can stop early.
pub fn head_decoded(need: u64, chunk_h: u64) -> bool {
    need.next_power_of_two().max(MIN_HEAD_ROWS as u64) * 4 <= chunk_h
}

/// The decoded-chunk cache as a decoder sees it.
pub trait ChunkCache {
    fn get(&self, group: u64, cy: u64, cx: u64) -> Option<Arc<Chunk>>;
    fn put(&self, group: u64, cy: u64, cx: u64, chunk: Arc<Chunk>);
}

/// How an image is cut into chunks: `chunk_w × chunk_h` pixels each, row-major from the top left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub width: u64,
    pub height: u64,
    pub chunk_w: u64,
    pub chunk_h: u64,
}

impl Grid {
    pub fn across(&self) -> u64 {
        self.width.div_ceil(self.chunk_w.max(1))
    }
    pub fn down(&self) -> u64 {
        self.height.div_ceil(self.chunk_h.max(1))
    }
}

type Key = (u64, u64, u64);

/// An LRU map of decoded chunks holding at most `budget` bytes (always at least the newest chunk).
struct Lru {
    map: HashMap<Key, (Arc<Chunk>, u64)>,
    order: BTreeMap<u64, Key>,
    bytes: u64,
    budget: u64,
    tick: u64,
}

impl Lru {
    fn get(&mut self, k: &Key) -> Option<Arc<Chunk>> {
        self.tick += 1;
        let t = self.tick;
        let (c, old) = self.map.get_mut(k)?;
        let c = c.clone();
        self.order.remove(old);
        *old = t;
        self.order.insert(t, *k);
        Some(c)
    }
    /// Caches `c` under `k`, replacing a cached head of the chunk with fewer rows.
    fn insert(&mut self, k: Key, c: Arc<Chunk>) {
        if let Some((old, t)) = self.map.get(&k) {
            if old.rows >= c.rows {
                return;
            }
            let (n, t) = (old.bytes.len() as u64, *t);
            self.bytes -= n;
            self.order.remove(&t);
            self.map.remove(&k);
        }
        self.tick += 1;
        self.bytes += c.bytes.len() as u64;
        self.map.insert(k, (c, self.tick));
        self.order.insert(self.tick, k);
        while self.bytes > self.budget && self.map.len() > 1 {
            let Some((_, old)) = self.order.pop_first() else { break };
            if let Some((c, _)) = self.map.remove(&old) {
                self.bytes -= c.bytes.len() as u64;
            }
        }
    }
}

/// A chunk being decoded: the decoding reader fills it; readers arriving meanwhile wait on it.
type Slot = OnceLock<std::result::Result<Arc<Chunk>, Arc<Error>>>;

/// An [`ArraySource`] over chunks a [`ChunkDecoder`] decodes on demand.
pub struct ChunkedArray<D: ChunkDecoder> {
    info: SourceInfo,
    grid: Grid,
    decoder: D,
    cache: Mutex<Lru>,
    /// Chunks being decoded now: a second reader of one waits for the first instead of decoding it again
    /// (the pyramid builder's per-core row parts share every tile of a tile row).
    in_flight: Mutex<HashMap<Key, Arc<Slot>>>,
    decoded: AtomicU64,
    heads: AtomicU64,
    /// The resolution levels the store keeps beside this one ([`ArraySource::native_levels`]).
    native: Vec<(u32, Arc<dyn ArraySource>)>,
}

impl<D: ChunkDecoder> ChunkedArray<D> {
    /// A chunked array of `info`'s image cut as `grid`, with a decoded-chunk cache of `budget` bytes.
    pub fn new(info: SourceInfo, grid: Grid, decoder: D, budget: u64) -> ChunkedArray<D> {
        let cache = Lru { map: HashMap::new(), order: BTreeMap::new(), bytes: 0, budget, tick: 0 };
        ChunkedArray {
            info,
            grid,
            decoder,
            cache: Mutex::new(cache),
            in_flight: Mutex::new(HashMap::new()),
            decoded: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            native: Vec::new(),
        }
    }

    /// This array with `native` as the levels the store keeps beside it (OME-Zarr multiscales).
    pub fn with_native_levels(mut self, native: Vec<(u32, Arc<dyn ArraySource>)>) -> ChunkedArray<D> {
        self.native = native;
        self
    }

    pub fn grid(&self) -> Grid {
        self.grid
    }

    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// How many chunks have been decoded so far (cache misses).
    pub fn decoded_chunks(&self) -> u64 {
        self.decoded.load(Ordering::Relaxed)
    }

    /// How many of those decodes stopped after the first rows of the chunk (heads, for previews).
    pub fn head_decodes(&self) -> u64 {
        self.heads.load(Ordering::Relaxed)
    }

    /// Bytes of decoded chunks the cache holds now.
    pub fn cached_bytes(&self) -> u64 {
        self.cache.lock().map(|c| c.bytes).unwrap_or(0)
    }

    /// The cached chunk `k` if it holds at least `need` rows.
    fn cached(&self, k: &Key, need: usize) -> Option<Arc<Chunk>> {
        self.cache.lock().ok()?.get(k).filter(|c| c.rows >= need)
    }

    /// How many rows to decode when a read needs the first `need` rows of a chunk: a head (rounded up, so
    /// that the next rows down find it cached) when the decoder stops early cheaply and the head is at most
    /// a quarter of the chunk, else `None`: the whole chunk.
    fn head_rows(&self, need: usize) -> Option<usize> {
        let h = need.next_power_of_two().max(MIN_HEAD_ROWS);
        (self.decoder.cheap_heads() && head_decoded(need as u64, self.grid.chunk_h)).then_some(h)
    }

    fn decode_one(&self, k: Key, need: usize) -> Result<Arc<Chunk>> {
        let slot = {
            let Ok(mut f) = self.in_flight.lock() else { return self.decode_now(k, need) };
            // Decoded while this reader waited for the lock: the cache has it.
            if let Some(c) = self.cached(&k, need) {
                return Ok(c);
            }
            f.entry(k).or_default().clone()
        };
        // The first reader decodes; the others block here until it is done, then share its result.
        let r = slot.get_or_init(|| self.decode_now(k, need).map_err(Arc::new)).clone();
        if let Ok(mut f) = self.in_flight.lock() {
            f.remove(&k);
        }
        // The first reader decoded a head too short for this one: decode deeper.
        let r = match r {
            Ok(c) if c.rows < need => return self.decode_now(k, need),
            r => r,
        };
        r.map_err(|e| match &*e {
            Error::BadInput { path, msg } => Error::BadInput { path: path.clone(), msg: msg.clone() },
            Error::FileShrank { path } => Error::FileShrank { path: path.clone() },
            other => Error::bad_input(&self.info.path, format!("decoding a chunk failed: {other}")),
        })
    }

    fn decode_now(&self, k: Key, need: usize) -> Result<Arc<Chunk>> {
        let head = match self.head_rows(need) {
            Some(h) => self.decoder.decode_head(k.0, k.1, k.2, h)?.map(Arc::new),
            None => None,
        };
        let c = match head {
            Some(c) => {
                self.heads.fetch_add(1, Ordering::Relaxed);
                c
            }
            None => self.decoder.decode_cached(k.0, k.1, k.2, self)?,
        };
        self.decoded.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(k, c.clone());
        }
        Ok(c)
    }

    /// The chunks `keys` with at least their first `need` rows, from the cache or decoded (the missing
    /// ones in parallel).
    fn chunks(&self, keys: &[Key], need: usize) -> Result<Vec<Arc<Chunk>>> {
        let mut got: Vec<Option<Arc<Chunk>>> = keys.iter().map(|k| self.cached(k, need)).collect();
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| got[i].is_none()).collect();
        if missing.len() > 1 {
            let head = self.head_rows(need);
            for &i in &missing {
                let k = keys[i];
                self.decoder.will_need(k.0, k.1, k.2, head);
            }
        }
        if missing.len() == 1 {
            got[missing[0]] = Some(self.decode_one(keys[missing[0]], need)?);
        } else if missing.len() > 1 {
            let done: Vec<Result<Arc<Chunk>>> = missing.par_iter().map(|&i| self.decode_one(keys[i], need)).collect();
            for (&i, c) in missing.iter().zip(done) {
                got[i] = Some(c?);
            }
        }
        Ok(got.into_iter().flatten().collect())
    }

    fn short(&self) -> Error {
        Error::bad_input(&self.info.path, "a decoded chunk is smaller than the image layout says")
    }
}

impl<D: ChunkDecoder> ChunkCache for ChunkedArray<D> {
    fn get(&self, group: u64, cy: u64, cx: u64) -> Option<Arc<Chunk>> {
        self.cache.lock().ok()?.get(&(group, cy, cx))
    }
    fn put(&self, group: u64, cy: u64, cx: u64, chunk: Arc<Chunk>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert((group, cy, cx), chunk);
        }
    }
}

impl<D: ChunkDecoder> ArraySource for ChunkedArray<D> {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_region(&self, slice: u64, rect: Rect, out: &mut RegionBuf) -> Result<()> {
        self.check_request(slice, &rect)?;
        let (group, s0) = self.decoder.locate(slice);
        let c = self.info.image.channels as usize;
        let esz = self.info.dtype.size();
        let (w, h) = (rect.width() as usize, rect.height() as usize);
        let dst = out.reset(self.info.dtype, w, h, c);
        let g = self.grid;
        let (cw, ch) = (g.chunk_w, g.chunk_h);
        for cy in rect.y0 / ch..=(rect.y1 - 1) / ch {
            let cxs: Vec<u64> = (rect.x0 / cw..=(rect.x1 - 1) / cw).collect();
            let keys: Vec<Key> = cxs.iter().map(|&cx| (group, cy, cx)).collect();
            let ya = rect.y0.max(cy * ch);
            let yb = rect.y1.min((cy + 1) * ch);
            let chunks = self.chunks(&keys, (yb - cy * ch) as usize)?;
            for (&cx, chunk) in cxs.iter().zip(&chunks) {
                let xa = rect.x0.max(cx * cw);
                let xb = rect.x1.min((cx + 1) * cw);
                let n = (xb - xa) as usize;
                let (cx0, cy0) = (cx * cw, cy * ch);
                let sp = chunk.samples;
                if s0 + c > sp || (xb - cx0) as usize > chunk.row_pixels || (yb - cy0) as usize > chunk.rows {
                    return Err(self.short());
                }
                for y in ya..yb {
                    let r = (y - cy0) as usize;
                    let src0 = ((r * chunk.row_pixels + (xa - cx0) as usize) * sp + s0) * esz;
                    let d0 = (((y - rect.y0) as usize * w + (xa - rect.x0) as usize) * c) * esz;
                    let d = &mut dst[d0..d0 + n * c * esz];
                    if sp == c {
                        let s = chunk.bytes.get(src0..src0 + n * c * esz).ok_or_else(|| self.short())?;
                        d.copy_from_slice(s);
                    } else {
                        let s = chunk.bytes.get(src0..src0 + ((n - 1) * sp + c) * esz).ok_or_else(|| self.short())?;
                        for i in 0..n {
                            d[i * c * esz..(i + 1) * c * esz].copy_from_slice(&s[i * sp * esz..(i * sp + c) * esz]);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn chunk_shape(&self) -> Option<(u64, u64)> {
        Some((self.grid.chunk_w, self.grid.chunk_h))
    }

    fn native_levels(&self) -> Vec<(u32, Arc<dyn ArraySource>)> {
        self.native.clone()
    }

    fn cheap_head_rows(&self) -> Option<u64> {
        let ch = self.grid.chunk_h;
        (self.decoder.cheap_heads() && ch >= 4 * MIN_HEAD_ROWS as u64).then_some(ch)
    }

    fn sample_grid(&self, slice: u64, xs: &[u64], ys: &[u64]) -> Result<Vec<f64>> {
        let im = self.info.image;
        if xs.iter().any(|&x| x >= im.width) || ys.iter().any(|&y| y >= im.height) || slice >= im.slices {
            return Err(Error::request(&self.info.path, "sample outside the image"));
        }
        let (group, s0) = self.decoder.locate(slice);
        let esz = self.info.dtype.size();
        let g = self.grid;
        let mut vals = Vec::with_capacity(xs.len() * ys.len());
        let mut row = RegionBuf::default();
        for &y in ys {
            let cy = y / g.chunk_h;
            let mut cxs: Vec<u64> = xs.iter().map(|&x| x / g.chunk_w).collect();
            cxs.dedup();
            let keys: Vec<Key> = cxs.iter().map(|&cx| (group, cy, cx)).collect();
            let need = (y - cy * g.chunk_h) as usize + 1;
            let chunks = self.chunks(&keys, need)?;
            let dst = row.reset(self.info.dtype, xs.len(), 1, 1);
            let mut k = 0;
            for (i, &x) in xs.iter().enumerate() {
                let cx = x / g.chunk_w;
                while k + 1 < cxs.len() && cxs[k] != cx {
                    k += 1;
                }
                let chunk = match cxs.get(k) {
                    Some(&c) if c == cx => &chunks[k],
                    _ => &self.chunks(&[(group, cy, cx)], need)?[0],
                };
                let (r, px) = ((y - cy * g.chunk_h) as usize, (x - cx * g.chunk_w) as usize);
                let at = ((r * chunk.row_pixels + px) * chunk.samples + s0) * esz;
                let s = chunk.bytes.get(at..at + esz).ok_or_else(|| self.short())?;
                dst[i * esz..(i + 1) * esz].copy_from_slice(s);
            }
            vals.extend(row.to_f64());
        }
        Ok(vals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::source::{Format, ImageShape};

    /// A 10 x 7 u16 image, value y*100+x, in 4 x 3 chunks with 2 samples (the second = value + 1).
    struct Fake;
    impl ChunkDecoder for Fake {
        fn locate(&self, slice: u64) -> (u64, usize) {
            (0, slice as usize)
        }
        fn decode(&self, _g: u64, cy: u64, cx: u64) -> Result<Chunk> {
            let mut v: Vec<u16> = Vec::new();
            for r in 0..3 {
                for i in 0..4 {
                    let (x, y) = (cx * 4 + i, cy * 3 + r);
                    v.push((y * 100 + x) as u16);
                    v.push((y * 100 + x + 1) as u16);
                }
            }
            Ok(Chunk { bytes: bytemuck::cast_slice(&v).to_vec(), row_pixels: 4, rows: 3, samples: 2 })
        }
    }

    #[test]
    fn regions_assemble_from_the_overlapping_chunks_only() {
        let im = ImageShape { slices: 2, height: 7, width: 10, channels: 1 };
        let info = SourceInfo::basic("f".into(), Format::RAW, vec![2, 7, 10], DType::U16, im);
        let a = ChunkedArray::new(info, Grid { width: 10, height: 7, chunk_w: 4, chunk_h: 3 }, Fake, 1 << 20);
        let mut b = RegionBuf::default();
        a.read_region(1, Rect::new(3, 2, 9, 7), &mut b).unwrap();
        let want: Vec<f64> = (2..7).flat_map(|y| (3..9).map(move |x| (y * 100 + x + 1) as f64)).collect();
        assert_eq!(b.to_f64(), want);
        assert_eq!(a.decoded_chunks(), 9);
        a.read_region(0, Rect::new(0, 0, 2, 2), &mut b).unwrap();
        assert_eq!(b.to_f64(), [0.0, 1.0, 100.0, 101.0]);
        assert_eq!(a.decoded_chunks(), 9, "cached");
        assert_eq!(a.sample_grid(0, &[1, 9], &[6]).unwrap(), [601.0, 609.0]);
        // A budget of one chunk keeps only the newest.
        let info = a.info().clone();
        let small = ChunkedArray::new(info, a.grid(), Fake, 1);
        small.read_region(0, Rect::new(0, 0, 10, 7), &mut b).unwrap();
        assert_eq!(small.cache.lock().unwrap().map.len(), 1);
    }

    /// Decodes slowly, so that concurrent readers of one chunk overlap.
    struct Slow;
    impl ChunkDecoder for Slow {
        fn locate(&self, slice: u64) -> (u64, usize) {
            Fake.locate(slice)
        }
        fn decode(&self, g: u64, cy: u64, cx: u64) -> Result<Chunk> {
            std::thread::sleep(std::time::Duration::from_millis(100));
            Fake.decode(g, cy, cx)
        }
    }

    #[test]
    fn readers_of_one_chunk_at_once_decode_it_once() {
        let im = ImageShape { slices: 2, height: 7, width: 10, channels: 1 };
        let info = SourceInfo::basic("f".into(), Format::RAW, vec![2, 7, 10], DType::U16, im);
        let a = ChunkedArray::new(info, Grid { width: 10, height: 7, chunk_w: 4, chunk_h: 3 }, Slow, 1 << 20);
        // Rows 0 and 1 through four threads at once: the same three chunks.
        std::thread::scope(|s| {
            for y in [0u64, 1, 0, 1] {
                let a = &a;
                s.spawn(move || {
                    let mut b = RegionBuf::default();
                    a.read_region(0, Rect::new(0, y, 10, y + 1), &mut b).unwrap();
                    assert_eq!(b.to_f64()[9], (y * 100 + 9) as f64);
                });
            }
        });
        assert_eq!(a.decoded_chunks(), 3);
    }

    /// 256-row chunks whose heads decode cheaply: value y*10+x.
    struct Heads;
    impl ChunkDecoder for Heads {
        fn locate(&self, _slice: u64) -> (u64, usize) {
            (0, 0)
        }
        fn decode(&self, g: u64, cy: u64, cx: u64) -> Result<Chunk> {
            Ok(self.decode_head(g, cy, cx, 256)?.unwrap())
        }
        fn cheap_heads(&self) -> bool {
            true
        }
        fn decode_head(&self, _g: u64, cy: u64, cx: u64, rows: usize) -> Result<Option<Chunk>> {
            let v: Vec<u16> =
                (0..rows as u64).flat_map(|r| (0..4).map(move |i| ((cy * 256 + r) * 10 + cx * 4 + i) as u16)).collect();
            Ok(Some(Chunk { bytes: bytemuck::cast_slice(&v).to_vec(), row_pixels: 4, rows, samples: 1 }))
        }
    }

    #[test]
    fn heads_are_decoded_for_top_rows_and_replaced_by_whole_chunks_for_deeper_ones() {
        let im = ImageShape { slices: 1, height: 512, width: 8, channels: 1 };
        let info = SourceInfo::basic("f".into(), Format::RAW, vec![512, 8], DType::U16, im);
        let a = ChunkedArray::new(info, Grid { width: 8, height: 512, chunk_w: 4, chunk_h: 256 }, Heads, 1 << 20);
        assert_eq!(a.cheap_head_rows(), Some(256));
        assert_eq!(a.sample_grid(0, &[1, 5], &[2, 258]).unwrap(), [21.0, 25.0, 2581.0, 2585.0]);
        // Four chunks, each decoded to a 16-row head.
        assert_eq!((a.decoded_chunks(), a.head_decodes()), (4, 4));
        a.sample_grid(0, &[1], &[15]).unwrap();
        assert_eq!(a.decoded_chunks(), 4, "row 15 is in the cached head");
        // Row 40 needs 41 rows: a 64-row head (a quarter of the chunk) replaces the 16-row one.
        assert_eq!(a.sample_grid(0, &[1], &[40]).unwrap(), [401.0]);
        assert_eq!((a.decoded_chunks(), a.head_decodes()), (5, 5));
        // Deeper than a quarter: the whole chunk, which then serves every row.
        let mut b = RegionBuf::default();
        a.read_region(0, Rect::new(0, 100, 8, 200), &mut b).unwrap();
        assert_eq!(b.to_f64()[0], 1000.0);
        assert_eq!((a.decoded_chunks(), a.head_decodes()), (7, 5));
        a.read_region(0, Rect::new(0, 0, 4, 256), &mut b).unwrap();
        assert_eq!(a.decoded_chunks(), 7);
        assert_eq!(a.cache.lock().unwrap().map.len(), 4);
    }
}
