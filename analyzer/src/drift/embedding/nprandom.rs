//! NumPy's legacy `RandomState` (MT19937), only the calls Evidently's embedding drift makes:
//! `np.random.seed(i)` + `choice(n, size)` (bootstrap), `rand(size)` (random-AUC bootstrap),
//! `permutation(n)` (scikit-learn's `train_test_split`) and `choice(n, size, replace=False)`
//! (pandas' `DataFrame.sample`). Porting the generator bit for bit makes vigil's results equal
//! to Evidently's instead of merely close; `tests/embedding_golden.rs` checks the streams
//! against NumPy's.

const N: usize = 624;
const M: usize = 397;

/// A Mersenne Twister seeded like `np.random.RandomState(seed)` with an integer seed.
pub struct RandomState {
    key: [u32; N],
    pos: usize,
}

impl RandomState {
    /// `np.random.RandomState(seed)` / `np.random.seed(seed)` (`mt19937_seed`, i.e. `init_genrand`).
    pub fn new(seed: u32) -> Self {
        let mut key = [0u32; N];
        let mut s = seed;
        for (pos, k) in key.iter_mut().enumerate() {
            *k = s;
            s = 1_812_433_253u32
                .wrapping_mul(s ^ (s >> 30))
                .wrapping_add(pos as u32 + 1);
        }
        RandomState { key, pos: N }
    }

    fn generate(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..N {
            let y = (self.key[i] & UPPER) | (self.key[(i + 1) % N] & LOWER);
            let mut v = self.key[(i + M) % N] ^ (y >> 1);
            if y & 1 == 1 {
                v ^= MATRIX_A;
            }
            self.key[i] = v;
        }
        self.pos = 0;
    }

    /// One raw 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.generate();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A double in [0, 1) with 53 random bits (`random_sample` / `rand`).
    pub fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// A value in [0, max] by masked rejection (`random_interval`, and the legacy bounded
    /// integers of `randint`, which use the same masked rule for ranges below 2^32).
    pub fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        mask |= mask >> 1;
        mask |= mask >> 2;
        mask |= mask >> 4;
        mask |= mask >> 8;
        mask |= mask >> 16;
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `randint(low, high)`: a value in [low, high). Requires `high > low` and
    /// `high - low <= 2^32`.
    pub fn randint(&mut self, low: i64, high: i64) -> i64 {
        let range = (high - 1 - low) as u64;
        if range == 0 {
            return low;
        }
        if range == u32::MAX as u64 {
            return low + self.next_u32() as i64;
        }
        low + self.interval(range as u32) as i64
    }

    /// `choice(n, size)` with replacement (equivalently `randint(0, n, size)`).
    pub fn choice(&mut self, n: usize, size: usize) -> Vec<usize> {
        (0..size)
            .map(|_| self.randint(0, n as i64) as usize)
            .collect()
    }

    /// `permutation(n)`: Fisher–Yates from the end, as the legacy `shuffle`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.interval(i as u32) as usize;
            v.swap(i, j);
        }
        v
    }

    /// `choice(n, size, replace=False)` = `permutation(n)[:size]` (what pandas'
    /// `sample(size, random_state=seed)` draws).
    pub fn sample_without_replacement(&mut self, n: usize, size: usize) -> Vec<usize> {
        let mut p = self.permutation(n);
        p.truncate(size);
        p
    }

    /// `rand(size)`.
    pub fn rand(&mut self, size: usize) -> Vec<f64> {
        (0..size).map(|_| self.next_f64()).collect()
    }
}

/// `np.percentile(values, 100 * q)` with NumPy's default linear interpolation.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let quantile = (100.0 * q) / 100.0;
    let virtual_index = (n - 1) as f64 * quantile;
    let lo = (virtual_index.floor().max(0.0) as usize).min(n - 1);
    let hi = (lo + 1).min(n - 1);
    let t = virtual_index - lo as f64;
    let (a, b) = (v[lo], v[hi]);
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// `np.median`: the middle value, or the mean of the two middle values.
pub fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (_, upper, _) = values.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    let upper = *upper;
    if n % 2 == 1 {
        return upper;
    }
    let lower = values[..mid]
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    (lower + upper) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_reference_output() {
        // init_genrand(5489) is the reference seed of the original MT19937 paper/code.
        let mut rs = RandomState::new(5489);
        assert_eq!(rs.next_u32(), 3_499_211_612);
        assert_eq!(rs.next_u32(), 581_869_302);
    }

    #[test]
    fn percentile_and_median() {
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert!((percentile(&[1.0, 2.0], 0.25) - 1.25).abs() < 1e-15);
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), 2.5);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    }
}
