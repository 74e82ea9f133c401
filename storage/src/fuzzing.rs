//! Fuzzing on stable Rust, inside `cargo test`: checked-in corpora replayed, then generated
//! inputs (proptest strategies in the spirit of `arbitrary`: random bytes and mutations of the
//! corpus seeds), with panics caught and failures shrunk to a minimal input.
//!
//! Every fuzz target of the workspace runs through this module:
//!
//! ```ignore
//! static SUITE: Suite = Suite::new("coffer-storage", 3);
//!
//! #[test]
//! fn keyring_decode() {
//!     let mut t = SUITE.target("keyring_decode", 400);
//!     let check = |b: &[u8]| -> Result<(), String> { /* no panic, typed error, round trip */ Ok(()) };
//!     t.replay(check);                                     // every file of fuzz/corpus/keyring_decode/
//!     t.generate(bytes_from(t.seeds(), DICT), |b| check(b));
//!     t.finish();                                         // prints "... malformed inputs tried"
//! }
//! ```
//!
//! * Corpora live in `fuzz/corpus/<target>/` at the workspace root, one input per file; a
//!   target without a corpus fails (an empty corpus would make the replay a test that cannot
//!   fail). A failing generated input is written to `<tmp>/coffer-fuzz-failures/<target>-<hash>`
//!   so it can be added to the corpus as a regression seed.
//! * `COFFER_FUZZ_CASES=N` sets the number of generated inputs of every target (soak runs);
//!   `COFFER_FUZZ_SEED=S` makes the generated inputs reproducible (the seed of every run is
//!   printed with its result line).
//! * Each target prints one line to the test process's stderr, past libtest's output capture,
//!   so a plain `cargo test` shows it; the last target of a suite to finish prints the suite's
//!   total: `fuzz[coffer] total: 9 targets, 5210 malformed inputs tried (...)`.
//!
//! Test code only: built in this crate's tests and, for the other crates' tests, behind the
//! `testing` feature (a dev-dependency feature), never in a production build.

// Test code: a failed expectation is a failed test, with the expectation as its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};

/// Environment variable: generated inputs per target (overrides every target's default).
pub const CASES_ENV: &str = "COFFER_FUZZ_CASES";
/// Environment variable: seed of the generated inputs.
pub const SEED_ENV: &str = "COFFER_FUZZ_SEED";
/// Largest input a mutation may grow to.
const MAX_LEN: usize = 64 * 1024;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// `fuzz/corpus/<target>/` at the workspace root.
pub fn corpus_dir(target: &str) -> PathBuf {
    workspace_root().join("fuzz").join("corpus").join(target)
}

/// The corpus of `target`: `(file name, bytes)`, sorted by name. Panics when there is none.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
    for e in entries {
        let path = e.unwrap().path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if path.is_file() && !name.starts_with('.') && name != "README.md" {
            out.push((name, std::fs::read(&path).unwrap()));
        }
    }
    assert!(!out.is_empty(), "corpus {} is empty", dir.display());
    out.sort();
    out
}

/// Writes `bytes` as corpus file `name` of `target` (used by the ignored corpus writers).
pub fn write_corpus_file(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// Generated inputs per target: `COFFER_FUZZ_CASES` or the target's default.
pub fn cases(default: u32) -> u32 {
    std::env::var(CASES_ENV).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// The seed of this run's random choices: `COFFER_FUZZ_SEED` or a fresh one.
pub fn seed() -> u64 {
    match std::env::var(SEED_ENV).ok().and_then(|v| v.trim().parse().ok()) {
        Some(s) => s,
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
        }
    }
}

/// Writes a line to the process's stderr directly: libtest captures `eprintln!` of passing
/// tests, not writes to the stream itself.
pub fn report(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// The fuzz targets of one test binary, for the total printed when the last one finishes.
pub struct Suite {
    name: &'static str,
    targets: usize,
    done: AtomicUsize,
    corpus: AtomicU64,
    generated: AtomicU64,
}

impl Suite {
    /// A suite of `targets` targets (the number of [`Suite::target`] calls in the binary).
    pub const fn new(name: &'static str, targets: usize) -> Self {
        Self {
            name,
            targets,
            done: AtomicUsize::new(0),
            corpus: AtomicU64::new(0),
            generated: AtomicU64::new(0),
        }
    }

    /// Starts target `name` with `default_cases` generated inputs (see [`cases`]).
    pub fn target(&'static self, name: &'static str, default_cases: u32) -> Target {
        Target {
            suite: self,
            name,
            cases: cases(default_cases),
            seed: seed(),
            started: Instant::now(),
            corpus: 0,
            generated: Arc::new(AtomicU64::new(0)),
            notes: Vec::new(),
        }
    }
}

/// One fuzz target's run. Call [`Target::finish`] at the end to print its result line.
pub struct Target {
    suite: &'static Suite,
    name: &'static str,
    cases: u32,
    seed: u64,
    started: Instant,
    corpus: u64,
    generated: Arc<AtomicU64>,
    notes: Vec<String>,
}

impl Target {
    /// This target's corpus (see [`corpus`]).
    pub fn corpus(&self) -> Vec<(String, Vec<u8>)> {
        corpus(self.name)
    }

    /// The corpus contents, as seeds for [`bytes_from`].
    pub fn seeds(&self) -> Vec<Vec<u8>> {
        self.corpus().into_iter().map(|(_, b)| b).collect()
    }

    /// Number of generated inputs this run asks for.
    pub fn cases(&self) -> u32 {
        self.cases
    }

    /// Adds a note to the result line (`name=value` counts a target wants to show).
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Runs every corpus file through `check`; a panic or an `Err` fails the test, naming the
    /// file.
    pub fn replay(&mut self, check: impl Fn(&[u8]) -> Result<(), String>) {
        for (name, bytes) in self.corpus() {
            self.corpus += 1;
            match catch_unwind(AssertUnwindSafe(|| check(&bytes))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("fuzz {}: corpus file {name}: {e}", self.name),
                Err(p) => panic!("fuzz {}: corpus file {name} panicked: {}", self.name, panic_text(&*p)),
            }
        }
    }

    /// Runs `cases` inputs generated by `strategy` through `check`. A panic or an `Err` is
    /// shrunk to a minimal input, which is saved and shown in the failure.
    pub fn generate<S>(&mut self, strategy: S, check: impl Fn(&S::Value) -> Result<(), String>)
    where
        S: Strategy,
        S::Value: Debug + AsInput,
    {
        self.generate_n(self.cases, strategy, check);
    }

    /// Like [`generate`](Self::generate) with an explicit number of inputs (a target with
    /// several generators splits its budget).
    pub fn generate_n<S>(&mut self, n: u32, strategy: S, check: impl Fn(&S::Value) -> Result<(), String>)
    where
        S: Strategy,
        S::Value: Debug + AsInput,
    {
        if n == 0 {
            return;
        }
        let config = Config {
            cases: n,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(self.seed ^ u64::from(n)),
            max_shrink_iters: 4096,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let counter = Arc::clone(&self.generated);
        let outcome = runner.run(&strategy, |v| {
            counter.fetch_add(1, Ordering::Relaxed);
            check(&v).map_err(TestCaseError::fail)
        });
        match outcome {
            Ok(()) => {}
            Err(TestError::Fail(why, input)) => {
                let saved = save_failure(self.name, &input.as_input());
                panic!(
                    "fuzz {}: {why}\n  minimal input: {}\n  saved to {}\n  reproduce with {SEED_ENV}={}",
                    self.name,
                    shown(&input),
                    saved.display(),
                    self.seed
                );
            }
            Err(TestError::Abort(why)) => panic!("fuzz {}: aborted: {why}", self.name),
        }
    }

    /// Prints this target's result line and adds it to the suite's total.
    pub fn finish(self) {
        let generated = self.generated.load(Ordering::Relaxed);
        let notes =
            if self.notes.is_empty() { String::new() } else { format!(" [{}]", self.notes.join(", ")) };
        report(&format!(
            "fuzz[{}] {}: {} corpus + {} generated = {} malformed inputs tried, 0 failures, {:.1} s (seed {}){notes}",
            self.suite.name,
            self.name,
            self.corpus,
            generated,
            self.corpus + generated,
            self.started.elapsed().as_secs_f64(),
            self.seed,
        ));
        let suite = self.suite;
        suite.corpus.fetch_add(self.corpus, Ordering::SeqCst);
        suite.generated.fetch_add(generated, Ordering::SeqCst);
        if suite.done.fetch_add(1, Ordering::SeqCst) + 1 == suite.targets {
            let (c, g) = (suite.corpus.load(Ordering::SeqCst), suite.generated.load(Ordering::SeqCst));
            report(&format!(
                "fuzz[{}] total: {} targets, {} malformed inputs tried ({c} corpus files, {g} generated), 0 failures",
                suite.name,
                suite.targets,
                c + g,
            ));
        }
    }
}

/// What a generated value looks like as a corpus file (to save a failing input).
pub trait AsInput {
    /// The bytes to save.
    fn as_input(&self) -> Vec<u8>;
}

impl AsInput for Vec<u8> {
    fn as_input(&self) -> Vec<u8> {
        self.clone()
    }
}

impl AsInput for String {
    fn as_input(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

/// A structured input saved as its `Debug` text (for reading, not replay).
#[derive(Clone)]
pub struct Structured<T>(pub T);

impl<T: Debug> Debug for Structured<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Debug> AsInput for Structured<T> {
    fn as_input(&self) -> Vec<u8> {
        format!("{:#?}", self.0).into_bytes()
    }
}

fn save_failure(target: &str, bytes: &[u8]) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let dir = std::env::temp_dir().join("coffer-fuzz-failures");
    let path = dir.join(format!("{target}-{:016x}", h.finish()));
    let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, bytes));
    path
}

fn shown<T: Debug + AsInput>(v: &T) -> String {
    let bytes = v.as_input();
    let text = match std::str::from_utf8(&bytes) {
        Ok(s) => format!("{s:?}"),
        Err(_) => format!("{v:?}"),
    };
    if text.len() > 4000 {
        let mut cut = 4000;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}… ({} bytes)", &text[..cut], bytes.len())
    } else {
        text
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// A small deterministic generator (SplitMix64) for tests that draw their own random choices
/// (corruption schedules); seed it with [`seed`] and print the seed.
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// One edit of an input, positions taken modulo its length (libFuzzer's mutators, roughly).
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flip one bit.
    FlipBit(Index, u8),
    /// Overwrite a byte.
    SetByte(Index, u8),
    /// Remove up to `n` bytes.
    Delete(Index, u8),
    /// Insert bytes.
    Insert(Index, Vec<u8>),
    /// Insert a dictionary token.
    Token(Index, Index),
    /// Repeat a slice of up to `n` bytes in place.
    Duplicate(Index, u8),
    /// Cut the input short.
    Truncate(Index),
    /// Replace the tail from a position with the tail of another seed.
    Splice(Index, Index, Index),
}

/// Tokens every text-format dictionary gets: quoting, nesting, numbers at the edges, escapes.
pub const COMMON_TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b"(",
    b")",
    b":",
    b",",
    b"=",
    b"\n",
    b"\r\n",
    b"\t",
    b" ",
    b"\0",
    b"-",
    b"0",
    b"-1",
    b"9999999999999999999999",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1e308",
    b"1e999",
    b"NaN",
    b"null",
    b"true",
    b"false",
    b"\\u0000",
    b"\\ud800",
    b"\xff",
    b"\xc3\x28",
    b"\xf0\x9f\x92\xa9",
    b"%",
    b"%00",
    b"%2e",
    b"%2f",
    b"..",
    b"/",
    b"//",
    b"*",
    b"+",
];

impl Mutation {
    fn apply(&self, b: &mut Vec<u8>, seeds: &[Vec<u8>], dict: &[&[u8]]) {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
        match self {
            Mutation::FlipBit(i, bit) => {
                if !b.is_empty() {
                    let p = at(i, b.len());
                    b[p] ^= 1 << (bit % 8);
                }
            }
            Mutation::SetByte(i, v) => {
                if !b.is_empty() {
                    let p = at(i, b.len());
                    b[p] = *v;
                }
            }
            Mutation::Delete(i, n) => {
                if !b.is_empty() {
                    let p = at(i, b.len());
                    let end = (p + usize::from(*n).max(1)).min(b.len());
                    b.drain(p..end);
                }
            }
            Mutation::Insert(i, bytes) => {
                let p = at(i, b.len() + 1);
                b.splice(p..p, bytes.iter().copied());
            }
            Mutation::Token(i, t) => {
                if !dict.is_empty() {
                    let p = at(i, b.len() + 1);
                    let tok = dict[t.index(dict.len())];
                    b.splice(p..p, tok.iter().copied());
                }
            }
            Mutation::Duplicate(i, n) => {
                if !b.is_empty() {
                    let p = at(i, b.len());
                    let end = (p + usize::from(*n).max(1)).min(b.len());
                    let piece = b[p..end].to_vec();
                    b.splice(p..p, piece);
                }
            }
            Mutation::Truncate(i) => {
                let p = at(i, b.len() + 1);
                b.truncate(p);
            }
            Mutation::Splice(s, from, to) => {
                if !seeds.is_empty() {
                    let other = &seeds[s.index(seeds.len())];
                    let p = at(to, b.len() + 1);
                    let q = at(from, other.len() + 1);
                    b.truncate(p);
                    b.extend_from_slice(&other[q..]);
                }
            }
        }
        b.truncate(MAX_LEN);
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        2 => (any::<Index>(), 1u8..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::Token(i, t)),
        1 => (any::<Index>(), 1u8..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<Index>(), any::<Index>()).prop_map(|(s, f, t)| Mutation::Splice(s, f, t)),
    ]
}

/// Inputs for a byte-oriented target: mostly the seeds with one to eight mutations (which keep
/// enough structure to get past the first checks), some purely random bytes, some random text
/// made of dictionary tokens. `dict` holds the format's own tokens (keywords, delimiters);
/// [`COMMON_TOKENS`] are always added.
pub fn bytes_from(seeds: Vec<Vec<u8>>, dict: &'static [&'static [u8]]) -> BoxedStrategy<Vec<u8>> {
    let mut tokens: Vec<&'static [u8]> = dict.to_vec();
    tokens.extend_from_slice(COMMON_TOKENS);
    let tokens: Arc<Vec<&'static [u8]>> = Arc::new(tokens);
    let seeds = Arc::new(seeds);
    let random = proptest::collection::vec(any::<u8>(), 0..256);
    let toks = Arc::clone(&tokens);
    let token_soup = proptest::collection::vec(any::<Index>(), 0..48)
        .prop_map(move |idx| idx.iter().flat_map(|i| toks[i.index(toks.len())].iter().copied()).collect());
    if seeds.is_empty() {
        return prop_oneof![1 => random, 1 => token_soup].boxed();
    }
    let mutated = (any::<Index>(), proptest::collection::vec(mutation(), 1..8)).prop_map(move |(i, muts)| {
        let mut b = seeds[i.index(seeds.len())].clone();
        for m in &muts {
            m.apply(&mut b, &seeds, &tokens);
        }
        b
    });
    prop_oneof![8 => mutated, 1 => random, 1 => token_soup].boxed()
}

/// [`bytes_from`] as (lossy) UTF-8 text, for targets that take a `&str`.
pub fn text_from(seeds: Vec<Vec<u8>>, dict: &'static [&'static [u8]]) -> BoxedStrategy<String> {
    bytes_from(seeds, dict).prop_map(|b| String::from_utf8_lossy(&b).into_owned()).boxed()
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;

    use super::*;

    #[test]
    fn mutations_stay_within_bounds() {
        let seeds = vec![b"abc".to_vec(), Vec::new(), vec![0; 10]];
        let mut runner = TestRunner::deterministic();
        for _ in 0..2000 {
            let muts = proptest::collection::vec(mutation(), 1..8).new_tree(&mut runner).unwrap().current();
            let mut b = seeds[0].clone();
            for m in &muts {
                m.apply(&mut b, &seeds, COMMON_TOKENS);
            }
            assert!(b.len() <= MAX_LEN);
        }
    }
}
