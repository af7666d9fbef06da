//! A small line chart of a statistic over time, as a PNG, with no image dependency.
//!
//! Mail clients show inline PNGs (`cid:` parts) but often not SVG, so the chart is rasterised
//! here: an RGB image, Bresenham lines, and a PNG container with uncompressed ("stored")
//! deflate blocks. A 360×120 chart is ~130 kB uncompressed — fine for an alert mail.

const W: usize = 360;
const H: usize = 120;
const PAD: usize = 8;

struct Canvas {
    px: Vec<[u8; 3]>,
}

impl Canvas {
    fn new() -> Canvas {
        Canvas {
            px: vec![[255, 255, 255]; W * H],
        }
    }
    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < W && (y as usize) < H {
            self.px[y as usize * W + x as usize] = c;
        }
    }
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], dash: bool) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        let mut n = 0u32;
        loop {
            if !dash || (n / 4).is_multiple_of(2) {
                self.set(x, y, c);
                self.set(x, y + 1, c);
            }
            n += 1;
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }
}

/// A PNG of `points` (time, value) with a dashed red line at `threshold`. Values are scaled
/// to `[0, max(values, threshold) · 1.1]`; time to the points' span.
pub fn line_chart_png(points: &[(u32, f64)], threshold: f64) -> Vec<u8> {
    let mut c = Canvas::new();
    let grey = [200, 200, 200];
    let (left, right, top, bottom) = (PAD as i64, (W - PAD) as i64, PAD as i64, (H - PAD) as i64);
    c.line((left, bottom), (right, bottom), grey, false);
    c.line((left, top), (left, bottom), grey, false);
    let finite: Vec<(u32, f64)> = points.iter().copied().filter(|p| p.1.is_finite()).collect();
    let vmax = finite
        .iter()
        .map(|p| p.1)
        .fold(threshold.max(1e-12), f64::max)
        * 1.1;
    let y_of = |v: f64| bottom - ((v / vmax) * (bottom - top) as f64).round() as i64;
    if threshold.is_finite() && threshold > 0.0 {
        let y = y_of(threshold);
        c.line((left, y), (right, y), [220, 40, 40], true);
    }
    if let (Some(first), Some(last)) = (finite.first(), finite.last()) {
        let span = (last.0.saturating_sub(first.0)).max(1) as f64;
        let x_of = |t: u32| left + ((t - first.0) as f64 / span * (right - left) as f64) as i64;
        let pts: Vec<(i64, i64)> = finite.iter().map(|p| (x_of(p.0), y_of(p.1))).collect();
        for pair in pts.windows(2) {
            c.line(pair[0], pair[1], [30, 90, 200], false);
        }
        for p in &pts {
            for d in -1..=1 {
                c.line((p.0 - 1, p.1 + d), (p.0 + 1, p.1 + d), [30, 90, 200], false);
            }
        }
    }
    encode_png(&c.px)
}

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = table[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc ^ 0xFFFF_FFFF
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn encode_png(px: &[[u8; 3]]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(H * (1 + 3 * W));
    for row in px.chunks(W) {
        raw.push(0); // filter: none
        for p in row {
            raw.extend_from_slice(p);
        }
    }
    // zlib stream of stored deflate blocks (≤ 65535 bytes each).
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        let len = b.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(b);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(W as u32).to_be_bytes());
    ihdr.extend_from_slice(&(H as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn png_is_well_formed() {
        let png = line_chart_png(&[(0, 0.02), (3600, 0.03), (7200, 0.4)], 0.1);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(
            u32::from_be_bytes([png[16], png[17], png[18], png[19]]),
            360
        );
        assert!(png.ends_with(&[0xAE, 0x42, 0x60, 0x82])); // IEND's CRC
                                                           // Every chunk's CRC checks out.
        let mut i = 8;
        while i < png.len() {
            let len = u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]) as usize;
            let crc_at = i + 8 + len;
            let crc = u32::from_be_bytes([
                png[crc_at],
                png[crc_at + 1],
                png[crc_at + 2],
                png[crc_at + 3],
            ]);
            assert_eq!(crc, crc32(&png[i + 4..crc_at]));
            i = crc_at + 4;
        }
        assert_eq!(i, png.len());
    }
}
