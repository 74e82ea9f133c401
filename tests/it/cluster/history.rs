//! Histories of client operations against a cluster, and a checker for them.
//!
//! Every client operation is recorded with its invoke and completion instants, the node it was
//! sent to, the operation and its outcome: a definite result (`Ok`), a definite failure (`Fail`:
//! nothing happened, e.g. the connection was refused or a 4xx other than a check-and-set
//! refusal), or `Unknown` (a timeout, a broken connection or a 5xx: the operation may or may not
//! have taken effect, at any time after its invocation).
//!
//! The checker:
//! - [`check_registers`]: per-key linearizability of the KV v2 data of a key, seen as a
//!   versioned register (write, write with `cas`, read, delete), by a Wing–Gong search with
//!   memoisation (as Lowe's WGL / Porcupine). An `Unknown` write is a call that never returns:
//!   it may be linearized anywhere after its invocation, or never. Unknown reads constrain
//!   nothing and are left out.
//! - [`check_lost_writes`]: every acknowledged write is still there at the end, on every node.
//! - [`LeaderLog`]: at most one leader per Raft term.
//! - [`check_logins`]: a `num_uses = N` AppRole secret ID admits at most N logins.
//! - [`check_transit`]: a ciphertext acknowledged under key version V always decrypts (to its
//!   plaintext) while V ≥ min_decryption_version, and an encryption never uses a key version
//!   older than a rotation acknowledged before it began.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Nanoseconds since the recorder started.
pub type Nanos = u64;

/// Completion instant of an operation whose outcome is unknown (it may take effect any time).
pub const NEVER: Nanos = u64::MAX;

/// A client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// KV v2 write of `value` to `key`, with `cas` when given.
    Write { key: String, value: String, cas: Option<u64> },
    /// KV v2 read of `key`.
    Read { key: String },
    /// KV v2 (soft) delete of the latest version of `key`.
    Delete { key: String },
    /// Transit key rotation.
    Rotate { key: String },
    /// Transit encryption of `plaintext`.
    Encrypt { key: String, plaintext: String },
    /// Transit decryption of a ciphertext acknowledged as the encryption of `plaintext`.
    Decrypt { key: String, ciphertext: String, plaintext: String },
    /// AppRole login with the secret ID labelled `secret` (a label, never the secret itself),
    /// created with `num_uses`.
    Login { secret: String, num_uses: u64 },
}

impl Op {
    /// The KV key a register operation is about.
    fn register_key(&self) -> Option<&str> {
        match self {
            Op::Write { key, .. } | Op::Read { key } | Op::Delete { key } => Some(key),
            _ => None,
        }
    }

    /// A short name for counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Write { cas: None, .. } => "kv write",
            Op::Write { cas: Some(_), .. } => "kv cas write",
            Op::Read { .. } => "kv read",
            Op::Delete { .. } => "kv delete",
            Op::Rotate { .. } => "transit rotate",
            Op::Encrypt { .. } => "transit encrypt",
            Op::Decrypt { .. } => "transit decrypt",
            Op::Login { .. } => "approle login",
        }
    }
}

/// A definite result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    /// A KV write took effect as `version`.
    Written { version: u64 },
    /// A `cas` write was refused: the current version was not the one given.
    CasRefused,
    /// A KV read found `value` as the current `version`.
    Value { value: String, version: u64 },
    /// A KV read found nothing (never written, or the latest version deleted).
    NotFound,
    /// Done (delete, rotate, login).
    Done,
    /// An encryption under key `version`.
    Ciphertext { version: u64, ciphertext: String },
    /// A decryption.
    Plaintext(String),
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(Ret),
    /// Definitely did not take effect (status, or 0 when the request never left).
    Fail(u16, String),
    /// May or may not have taken effect.
    Unknown(String),
}

/// One recorded operation.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: usize,
    pub client: usize,
    /// 1-based node the request went to.
    pub node: usize,
    pub invoke: Nanos,
    /// When the client saw the outcome (for `Unknown`, when it gave up).
    pub complete: Nanos,
    pub op: Op,
    pub outcome: Outcome,
}

impl Entry {
    /// The instant by which the operation certainly took effect, if it did.
    fn effective_complete(&self) -> Nanos {
        match self.outcome {
            Outcome::Unknown(_) => NEVER,
            _ => self.complete,
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |n: Nanos| n as f64 / 1e6;
        write!(
            f,
            "#{} c{} n{} [{:.1}ms..{:.1}ms] {:?} -> {:?}",
            self.id,
            self.client,
            self.node,
            ms(self.invoke),
            ms(self.complete),
            self.op,
            self.outcome
        )
    }
}

/// Records operations from many threads.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Recorder { start: Instant::now(), entries: Arc::default() }
    }

    /// Now, on the history's clock.
    pub fn now(&self) -> Nanos {
        self.start.elapsed().as_nanos() as Nanos
    }

    /// Runs `f` (the request) and records it with its invoke and completion instants.
    pub fn run(&self, client: usize, node: usize, op: Op, f: impl FnOnce() -> Outcome) -> Outcome {
        let invoke = self.now();
        let outcome = f();
        let complete = self.now();
        let mut entries = self.entries.lock().unwrap();
        let id = entries.len();
        entries.push(Entry { id, client, node, invoke, complete, op, outcome: outcome.clone() });
        outcome
    }

    /// How many recorded operations `f` selects.
    pub fn count(&self, f: impl Fn(&Entry) -> bool) -> usize {
        self.entries.lock().unwrap().iter().filter(|e| f(e)).count()
    }

    /// Everything recorded so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().unwrap().clone()
    }
}

/// A property that does not hold.
#[derive(Clone, Debug)]
pub struct Violation {
    pub kind: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

fn violation(kind: &'static str, detail: String) -> Violation {
    Violation { kind, detail }
}

// ---------------------------------------------------------------------------------------------
// Per-key linearizability of the KV v2 register.

/// The register's state: the current version (0: never written) and the value it holds
/// (`None`: never written or the latest version deleted). Values are interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Reg {
    version: u64,
    value: Option<u32>,
}

/// A register operation with what was observed of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ROp {
    /// A write of `value`; `ret` is the version it took when acknowledged.
    Write {
        value: u32,
        cas: Option<u64>,
        ret: Option<u64>,
    },
    /// A `cas` write refused.
    CasRefused {
        cas: u64,
    },
    /// A read returning (value, version), or nothing.
    Read {
        ret: Option<(u32, u64)>,
    },
    Delete,
}

fn step(s: Reg, op: ROp) -> Option<Reg> {
    match op {
        ROp::Write { value, cas, ret } => {
            if cas.is_some_and(|c| c != s.version) {
                return None;
            }
            let next = Reg { version: s.version + 1, value: Some(value) };
            if ret.is_some_and(|v| v != next.version) {
                return None;
            }
            Some(next)
        }
        ROp::CasRefused { cas } => (cas != s.version).then_some(s),
        ROp::Read { ret: None } => s.value.is_none().then_some(s),
        ROp::Read { ret: Some((value, version)) } => {
            (s.value == Some(value) && s.version == version).then_some(s)
        }
        ROp::Delete => Some(Reg { value: None, ..s }),
    }
}

/// The register operations of one key. Values no read ever returned are all interned as one
/// value (0): which of them a state holds cannot be told apart by any operation, and merging
/// them lets the search's memo merge states.
fn register_ops<'a>(entries: &[&'a Entry]) -> Vec<(&'a Entry, ROp)> {
    let mut values: HashMap<&str, u32> = HashMap::new();
    for e in entries {
        if let (Op::Read { .. }, Outcome::Ok(Ret::Value { value, .. })) = (&e.op, &e.outcome) {
            let n = values.len() as u32 + 1;
            values.entry(value).or_insert(n);
        }
    }
    let intern = |v: &str| values.get(v).copied().unwrap_or(0);
    let mut out = Vec::new();
    for e in entries {
        let unknown = matches!(e.outcome, Outcome::Unknown(_));
        let op = match (&e.op, &e.outcome) {
            (_, Outcome::Fail(..)) => continue,
            (Op::Read { .. }, Outcome::Unknown(_)) => continue,
            (Op::Write { value, cas, .. }, Outcome::Ok(Ret::Written { version })) => {
                ROp::Write { value: intern(value), cas: *cas, ret: Some(*version) }
            }
            (Op::Write { value, cas, .. }, _) if unknown => {
                ROp::Write { value: intern(value), cas: *cas, ret: None }
            }
            (Op::Write { cas: Some(c), .. }, Outcome::Ok(Ret::CasRefused)) => ROp::CasRefused { cas: *c },
            (Op::Read { .. }, Outcome::Ok(Ret::Value { value, version })) => {
                ROp::Read { ret: Some((intern(value), *version)) }
            }
            (Op::Read { .. }, Outcome::Ok(Ret::NotFound)) => ROp::Read { ret: None },
            (Op::Delete { .. }, Outcome::Ok(_) | Outcome::Unknown(_)) => ROp::Delete,
            // A result that does not fit the operation: the recorder's bug, reported loudly.
            (op, outcome) => panic!("unexpected outcome {outcome:?} for {op:?}"),
        };
        out.push((*e, op));
    }
    out
}

/// Result of the search on one key.
#[derive(Debug)]
pub enum Linearizability {
    Ok,
    /// No linearization; the operation that could not be placed and the longest prefix found.
    Violation {
        stuck: usize,
        prefix: Vec<usize>,
    },
    /// The search gave up after `steps` (counted as a failure by callers: unproven).
    GaveUp {
        steps: u64,
    },
}

/// The largest number of search steps per key before giving up.
pub const SEARCH_BUDGET: u64 = 20_000_000;

/// Wing–Gong search with memoisation (Lowe's WGL) over the register operations of one key.
fn linearizable(ops: &[(&Entry, ROp)], budget: u64) -> Linearizability {
    // Events: a call per operation, a return per operation that completed. Sorted by time,
    // calls before returns at the same instant (more concurrency: never a false alarm).
    const HEAD: usize = 0;
    struct Ev {
        op: usize,
        call: bool,
        ret: usize, // for a call: index of its return event, or 0 when it never returns
    }
    let mut timed: Vec<(Nanos, bool, usize)> = Vec::new(); // (time, is_return, op)
    for (i, (e, _)) in ops.iter().enumerate() {
        timed.push((e.invoke, false, i));
        let c = e.effective_complete();
        if c != NEVER {
            timed.push((c.max(e.invoke), true, i));
        }
    }
    timed.sort();
    // Index 0 is the list head.
    let mut evs = vec![Ev { op: usize::MAX, call: false, ret: 0 }];
    let mut call_ev = vec![0usize; ops.len()];
    for &(_, is_ret, op) in &timed {
        let idx = evs.len();
        if is_ret {
            let c = call_ev[op];
            evs[c].ret = idx;
        } else {
            call_ev[op] = idx;
        }
        evs.push(Ev { op, call: !is_ret, ret: 0 });
    }
    // Operations that never return and have the same effect are interchangeable: a search may
    // always take the earliest-invoked one left of such a class (swapping two of them in a
    // linearization changes nothing, and the earlier one is available whenever the later one
    // is). Without this, k pending writes would make 2^k memo states.
    let mut class_of: Vec<Option<(usize, usize)>> = vec![None; ops.len()]; // (class, rank)
    let mut classes: HashMap<ROp, usize> = HashMap::new();
    let mut class_len: Vec<usize> = Vec::new();
    for &(_, is_ret, op) in &timed {
        if is_ret || ops[op].0.effective_complete() != NEVER {
            continue;
        }
        let n = classes.len();
        let cl = *classes.entry(ops[op].1).or_insert(n);
        if cl == class_len.len() {
            class_len.push(0);
        }
        class_of[op] = Some((cl, class_len[cl]));
        class_len[cl] += 1;
    }
    let mut taken = vec![0usize; class_len.len()];
    let n = evs.len();
    let mut next: Vec<usize> = (0..n).map(|i| (i + 1) % n).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| (i + n - 1) % n).collect();
    let remove = |x: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        let (p, nx) = (prev[x], next[x]);
        next[p] = nx;
        prev[nx] = p;
    };
    let restore = |x: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        let (p, nx) = (prev[x], next[x]);
        next[p] = x;
        prev[nx] = x;
    };

    let words = ops.len().div_ceil(64);
    let mut done = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, Reg)> = HashSet::new();
    let mut stack: Vec<(usize, Reg)> = Vec::new();
    let mut state = Reg { version: 0, value: None };
    let mut returns_left = evs.iter().filter(|e| !e.call && e.op != usize::MAX).count();
    let mut best: (usize, usize, Vec<usize>) = (0, usize::MAX, Vec::new());
    let mut steps = 0u64;
    let mut e = next[HEAD];
    loop {
        if returns_left == 0 {
            return Linearizability::Ok;
        }
        steps += 1;
        if steps > budget {
            return Linearizability::GaveUp { steps };
        }
        if e != HEAD && evs[e].call {
            let op = evs[e].op;
            if class_of[op].is_some_and(|(cl, rank)| taken[cl] != rank) {
                e = next[e];
                continue;
            }
            if let Some(s2) = step(state, ops[op].1) {
                let mut d2 = done.clone();
                d2[op / 64] |= 1 << (op % 64);
                if cache.insert((d2.clone(), s2)) {
                    stack.push((e, state));
                    if let Some((cl, _)) = class_of[op] {
                        taken[cl] += 1;
                    }
                    state = s2;
                    done = d2;
                    remove(e, &mut next, &mut prev);
                    if evs[e].ret != 0 {
                        remove(evs[e].ret, &mut next, &mut prev);
                        returns_left -= 1;
                    }
                    e = next[HEAD];
                    continue;
                }
            }
            e = next[e];
        } else {
            // A return whose call is not linearized yet (or the end of the list): undo the
            // last choice and try the next candidate after it.
            if e != HEAD && stack.len() >= best.0 {
                best = (stack.len(), evs[e].op, stack.iter().map(|(c, _)| evs[*c].op).collect());
            }
            let Some((c, s)) = stack.pop() else {
                return Linearizability::Violation { stuck: best.1, prefix: best.2 };
            };
            state = s;
            let op = evs[c].op;
            done[op / 64] &= !(1 << (op % 64));
            if let Some((cl, _)) = class_of[op] {
                taken[cl] -= 1;
            }
            if evs[c].ret != 0 {
                restore(evs[c].ret, &mut next, &mut prev);
                returns_left += 1;
            }
            restore(c, &mut next, &mut prev);
            e = next[c];
        }
    }
}

/// What the register check looked at.
#[derive(Debug, Default)]
pub struct RegisterStats {
    pub keys: usize,
    /// Operations that entered the search (definite and unknown writes, definite reads).
    pub ops: usize,
}

/// Whether `e` goes into the per-key linearizability search (see [`RegisterStats::ops`]).
pub fn enters_register_search(e: &Entry) -> bool {
    e.op.register_key().is_some()
        && !matches!(e.outcome, Outcome::Fail(..))
        && !matches!((&e.op, &e.outcome), (Op::Read { .. }, Outcome::Unknown(_)))
}

/// Per-key linearizability of the KV v2 registers in `entries`.
pub fn check_registers(entries: &[Entry]) -> (RegisterStats, Vec<Violation>) {
    let mut by_key: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        if let Some(k) = e.op.register_key() {
            by_key.entry(k).or_default().push(e);
        }
    }
    let mut stats = RegisterStats::default();
    let mut out = Vec::new();
    for (key, es) in by_key {
        let ops = register_ops(&es);
        stats.keys += 1;
        stats.ops += ops.len();
        match linearizable(&ops, SEARCH_BUDGET) {
            Linearizability::Ok => {}
            Linearizability::GaveUp { steps } => out.push(violation(
                "linearizability unproven",
                format!("key {key}: the search gave up after {steps} steps over {} operations", ops.len()),
            )),
            Linearizability::Violation { stuck, prefix } => {
                let stuck_entry = ops.get(stuck).map(|(e, _)| *e);
                let mut text = format!("key {key}: no linearization of {} operations", ops.len());
                if let Some(s) = stuck_entry {
                    text.push_str(&format!("\n  cannot place: {s}"));
                }
                let tail = prefix.len().saturating_sub(8);
                text.push_str(&format!("\n  longest linearizable prefix ({} ops), last ones:", prefix.len()));
                for &i in &prefix[tail..] {
                    text.push_str(&format!("\n    {}", ops[i].0));
                }
                if let Some(s) = stuck_entry {
                    text.push_str("\n  operations overlapping it:");
                    for (e, _) in ops.iter().filter(|(e, _)| {
                        e.id != s.id && e.invoke <= s.complete && e.effective_complete() >= s.invoke
                    }) {
                        text.push_str(&format!("\n    {e}"));
                    }
                }
                out.push(violation("linearizability", text));
            }
        }
    }
    (stats, out)
}

// ---------------------------------------------------------------------------------------------
// Other invariants.

/// What one node holds for a key at the end: its current version and value (None: deleted or
/// absent), as read from `kv/metadata` and `kv/data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Final {
    pub node: usize,
    pub key: String,
    pub version: u64,
    pub value: Option<String>,
}

/// No acknowledged write lost: on every node, each key's final version is at least the highest
/// acknowledged version, the nodes agree, and a key whose last operation was an acknowledged
/// write (nothing after it, nothing unknown) holds that write's value.
pub fn check_lost_writes(entries: &[Entry], finals: &[Final]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut acked: BTreeMap<&str, (u64, &Entry)> = BTreeMap::new();
    let mut changes: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        let (Op::Write { key, .. } | Op::Delete { key }) = &e.op else { continue };
        let change = matches!(
            (&e.op, &e.outcome),
            (Op::Write { .. }, Outcome::Ok(Ret::Written { .. }))
                | (Op::Delete { .. }, Outcome::Ok(_))
                | (_, Outcome::Unknown(_))
        );
        if change {
            changes.entry(key).or_default().push(e);
        }
        if let Outcome::Ok(Ret::Written { version }) = &e.outcome {
            let best = acked.entry(key).or_insert((*version, e));
            if *version > best.0 {
                *best = (*version, e);
            }
        }
    }
    let mut by_key: BTreeMap<&str, Vec<&Final>> = BTreeMap::new();
    for f in finals {
        by_key.entry(&f.key).or_default().push(f);
    }
    for (key, (version, w)) in &acked {
        let Op::Write { value, .. } = &w.op else { continue };
        let Some(fs) = by_key.get(key) else {
            out.push(violation("lost write", format!("key {key}: no final read, last acknowledged {w}")));
            continue;
        };
        // Every other change of the key ended before this write began: its value is the one
        // every node must hold.
        let last = changes[key].iter().all(|e| e.id == w.id || e.effective_complete() < w.invoke);
        for f in fs {
            if f.version < *version {
                out.push(violation(
                    "lost write",
                    format!("node {} holds version {} of {key} after acknowledging {w}", f.node, f.version),
                ));
            } else if last && (f.version != *version || f.value.as_deref() != Some(value.as_str())) {
                out.push(violation(
                    "lost write",
                    format!(
                        "node {} holds {key} = {:?} (version {}) but the last write was {w}",
                        f.node, f.value, f.version
                    ),
                ));
            }
        }
    }
    for (key, fs) in &by_key {
        if let Some(first) = fs.first() {
            for f in &fs[1..] {
                if (f.version, &f.value) != (first.version, &first.value) {
                    out.push(violation(
                        "diverged",
                        format!(
                            "key {key}: node {} has {:?}, node {} has {:?}",
                            first.node,
                            (first.version, &first.value),
                            f.node,
                            (f.version, &f.value)
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// Who was seen leading which term. A claim counts when a node reported itself leader of the
/// same term in two consecutive samples (a node's role and term are read from two places, so
/// one sample taken in the instant a deposed leader learns the new term can pair the old role
/// with the new term; two samples in a row cannot).
#[derive(Clone, Debug, Default)]
pub struct LeaderLog {
    pub claims: BTreeMap<u64, BTreeSet<usize>>,
    pub samples: u64,
    last: HashMap<usize, (u64, bool)>,
}

impl LeaderLog {
    /// Node `node` reported `term` and whether it leads.
    pub fn sample(&mut self, node: usize, term: u64, leader: bool) {
        self.samples += 1;
        if leader && self.last.get(&node) == Some(&(term, true)) {
            self.claims.entry(term).or_default().insert(node);
        }
        self.last.insert(node, (term, leader));
    }

    /// A node restarted: its next sample starts afresh.
    pub fn forget(&mut self, node: usize) {
        self.last.remove(&node);
    }

    /// At most one leader per term.
    pub fn check(&self) -> Vec<Violation> {
        self.claims
            .iter()
            .filter(|(_, nodes)| nodes.len() > 1)
            .map(|(term, nodes)| {
                violation("two leaders in one term", format!("term {term}: nodes {nodes:?}"))
            })
            .collect()
    }
}

/// A `num_uses = N` secret ID admits at most N logins.
pub fn check_logins(entries: &[Entry]) -> Vec<Violation> {
    let mut ok: BTreeMap<&str, (u64, Vec<&Entry>)> = BTreeMap::new();
    for e in entries {
        if let (Op::Login { secret, num_uses }, Outcome::Ok(_)) = (&e.op, &e.outcome) {
            let slot = ok.entry(secret).or_insert((*num_uses, Vec::new()));
            slot.1.push(e);
        }
    }
    ok.into_iter()
        .filter(|(_, (n, es))| es.len() as u64 > *n)
        .map(|(secret, (n, es))| {
            let list: Vec<String> = es.iter().map(|e| format!("\n    {e}")).collect();
            violation(
                "secret ID over its uses",
                format!("{secret} (num_uses {n}) admitted {} logins:{}", es.len(), list.concat()),
            )
        })
        .collect()
}

/// Transit: an acknowledged ciphertext always decrypts to its plaintext (the key's
/// min_decryption_version stays 1 while the history is recorded), and an encryption uses a key
/// version no older than the rotations acknowledged before it began and no newer than the
/// rotations begun before it ended.
pub fn check_transit(entries: &[Entry]) -> Vec<Violation> {
    let mut out = Vec::new();
    let rotations: Vec<&Entry> = entries.iter().filter(|e| matches!(e.op, Op::Rotate { .. })).collect();
    for e in entries {
        match (&e.op, &e.outcome) {
            (Op::Decrypt { plaintext, .. }, Outcome::Ok(Ret::Plaintext(p))) if p != plaintext => {
                out.push(violation("transit decrypt", format!("wrong plaintext {p:?}: {e}")));
            }
            (Op::Decrypt { .. }, Outcome::Fail(status, _)) if *status != 0 => {
                out.push(violation(
                    "transit decrypt",
                    format!("an acknowledged ciphertext was refused: {e}"),
                ));
            }
            (Op::Encrypt { key, .. }, Outcome::Ok(Ret::Ciphertext { version, .. })) => {
                let same_key = |r: &&&Entry| matches!(&r.op, Op::Rotate { key: k } if k == key);
                let acked_before = rotations
                    .iter()
                    .filter(same_key)
                    .filter(|r| matches!(r.outcome, Outcome::Ok(_)) && r.complete < e.invoke)
                    .count() as u64;
                let begun_before = rotations
                    .iter()
                    .filter(same_key)
                    .filter(|r| !matches!(r.outcome, Outcome::Fail(..)) && r.invoke < e.complete)
                    .count() as u64;
                if *version < 1 + acked_before || *version > 1 + begun_before {
                    out.push(violation(
                        "transit key version",
                        format!(
                            "encrypted under version {version}; {acked_before} rotations acknowledged before, {begun_before} begun before it ended: {e}"
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The checker's own tests: hand-built histories, linearizable and not.

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds histories by hand: `op(client, invoke, complete, op, outcome)`.
    #[derive(Default)]
    struct H(Vec<Entry>);

    impl H {
        fn op(&mut self, client: usize, invoke: u64, complete: u64, op: Op, outcome: Outcome) -> &mut Self {
            let id = self.0.len();
            self.0.push(Entry { id, client, node: 1, invoke, complete, op, outcome });
            self
        }
        fn w(&mut self, c: usize, t0: u64, t1: u64, v: &str, outcome: Outcome) -> &mut Self {
            self.op(c, t0, t1, Op::Write { key: "k".into(), value: v.into(), cas: None }, outcome)
        }
        fn cas(&mut self, c: usize, t0: u64, t1: u64, v: &str, cas: u64, outcome: Outcome) -> &mut Self {
            self.op(c, t0, t1, Op::Write { key: "k".into(), value: v.into(), cas: Some(cas) }, outcome)
        }
        fn r(&mut self, c: usize, t0: u64, t1: u64, outcome: Outcome) -> &mut Self {
            self.op(c, t0, t1, Op::Read { key: "k".into() }, outcome)
        }
        fn del(&mut self, c: usize, t0: u64, t1: u64, outcome: Outcome) -> &mut Self {
            self.op(c, t0, t1, Op::Delete { key: "k".into() }, outcome)
        }
    }

    fn written(version: u64) -> Outcome {
        Outcome::Ok(Ret::Written { version })
    }
    fn val(v: &str, version: u64) -> Outcome {
        Outcome::Ok(Ret::Value { value: v.into(), version })
    }
    fn unknown() -> Outcome {
        Outcome::Unknown("timeout".into())
    }
    fn violations(h: &H) -> Vec<Violation> {
        check_registers(&h.0).1
    }

    #[test]
    fn checker_accepts_sequential_and_concurrent_linearizable_histories() {
        let mut h = H::default();
        h.r(1, 0, 1, Outcome::Ok(Ret::NotFound))
            .w(1, 2, 3, "a", written(1))
            .r(2, 4, 5, val("a", 1))
            .cas(1, 6, 7, "b", 1, written(2))
            .cas(2, 8, 9, "c", 1, Outcome::Ok(Ret::CasRefused))
            .del(1, 10, 11, Outcome::Ok(Ret::Done))
            .r(2, 12, 13, Outcome::Ok(Ret::NotFound))
            .w(1, 14, 15, "d", written(3))
            .r(2, 16, 17, val("d", 3));
        assert!(violations(&h).is_empty(), "{:?}", violations(&h));

        // Two overlapping writes; reads during the overlap may see either order, as long as
        // versions agree.
        let mut h = H::default();
        h.w(1, 0, 100, "a", written(2))
            .w(2, 10, 90, "b", written(1))
            .r(3, 20, 30, val("b", 1))
            .r(3, 40, 110, val("a", 2))
            .r(4, 120, 130, val("a", 2));
        assert!(violations(&h).is_empty(), "{:?}", violations(&h));
    }

    #[test]
    fn checker_reports_a_stale_read() {
        // "b" is acknowledged before the read begins, which still returns "a".
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).w(1, 2, 3, "b", written(2)).r(2, 4, 5, val("a", 1));
        let v = violations(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].kind, "linearizability");
        assert!(v[0].detail.contains("cannot place"), "{}", v[0].detail);
        // Concurrent with the write, the same read is fine.
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).w(1, 2, 10, "b", written(2)).r(2, 4, 5, val("a", 1));
        assert!(violations(&h).is_empty());
        // Reads that go back in time: b then a, both after both writes are acknowledged.
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).w(2, 0, 5, "b", written(2)).r(3, 6, 7, val("b", 2)).r(
            3,
            8,
            9,
            val("a", 1),
        );
        assert_eq!(violations(&h).len(), 1);
        // A read of a deleted key, after the delete was acknowledged.
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).del(1, 2, 3, Outcome::Ok(Ret::Done)).r(2, 4, 5, val("a", 1));
        assert_eq!(violations(&h).len(), 1);
    }

    #[test]
    fn checker_handles_writes_whose_outcome_is_unknown() {
        // A timed-out write that took effect (observed later, even much later).
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).w(2, 2, 3, "x", unknown()).r(3, 50, 51, val("x", 2)).w(
            1,
            60,
            61,
            "b",
            written(3),
        );
        assert!(violations(&h).is_empty(), "{:?}", violations(&h));
        // A timed-out write that never took effect.
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).w(2, 2, 3, "x", unknown()).r(3, 50, 51, val("a", 1)).w(
            1,
            60,
            61,
            "b",
            written(2),
        );
        assert!(violations(&h).is_empty(), "{:?}", violations(&h));
        // ... but it cannot take effect before it was invoked.
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).r(3, 2, 3, val("x", 2)).w(2, 10, 11, "x", unknown());
        assert_eq!(violations(&h).len(), 1);
        // ... nor take effect twice, nor flicker: once "b" (version 3) was read, "x" is gone.
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1))
            .w(2, 2, 3, "x", unknown())
            .r(3, 10, 11, val("x", 2))
            .w(1, 12, 13, "b", written(3))
            .r(3, 14, 15, val("x", 2));
        assert_eq!(violations(&h).len(), 1);
        // An unknown cas write only takes effect when its version matched.
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).cas(2, 2, 3, "x", 5, unknown()).r(3, 10, 11, val("x", 2));
        assert_eq!(violations(&h).len(), 1);
        // A definite failure never took effect.
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).w(2, 2, 3, "x", Outcome::Fail(0, "refused".into())).r(
            3,
            10,
            11,
            val("x", 2),
        );
        assert_eq!(violations(&h).len(), 1);
        // A refused cas says the version differed at some point within the call.
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).cas(2, 2, 3, "x", 1, Outcome::Ok(Ret::CasRefused));
        assert_eq!(violations(&h).len(), 1);
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).w(1, 1, 4, "b", written(2)).cas(
            2,
            2,
            3,
            "x",
            1,
            Outcome::Ok(Ret::CasRefused),
        );
        assert!(violations(&h).is_empty());
    }

    #[test]
    fn checker_reports_acknowledged_writes_that_are_lost() {
        // The history itself: a final read that does not show an acknowledged write.
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).w(1, 2, 3, "b", written(2)).r(2, 100, 101, val("a", 1));
        assert_eq!(violations(&h).len(), 1);
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).r(2, 100, 101, Outcome::Ok(Ret::NotFound));
        assert_eq!(violations(&h).len(), 1);

        // The final state of the nodes.
        let fin = |node, version, value: Option<&str>| Final {
            node,
            key: "k".into(),
            version,
            value: value.map(str::to_owned),
        };
        let mut h = H::default();
        h.w(1, 0, 1, "a", written(1)).w(1, 2, 3, "b", written(2));
        let good: Vec<Final> = (1..=3).map(|n| fin(n, 2, Some("b"))).collect();
        assert!(check_lost_writes(&h.0, &good).is_empty());
        let lost = vec![fin(1, 2, Some("b")), fin(2, 1, Some("a")), fin(3, 2, Some("b"))];
        let v = check_lost_writes(&h.0, &lost);
        assert!(v.iter().any(|v| v.kind == "lost write" && v.detail.contains("node 2")), "{v:?}");
        assert!(v.iter().any(|v| v.kind == "diverged"), "{v:?}");
        // The right version with another value is a lost write too (nothing else touched it).
        let swapped = vec![fin(1, 2, Some("z")), fin(2, 2, Some("z")), fin(3, 2, Some("z"))];
        assert!(!check_lost_writes(&h.0, &swapped).is_empty());
        // No final read at all for an acknowledged key.
        assert!(!check_lost_writes(&h.0, &[]).is_empty());
        // After an unknown write, a higher version is fine.
        h.w(2, 4, 5, "c", unknown());
        let later: Vec<Final> = (1..=3).map(|n| fin(n, 3, Some("c"))).collect();
        assert!(check_lost_writes(&h.0, &later).is_empty());
    }

    #[test]
    fn leader_log_reports_two_leaders_in_one_term_only_when_confirmed() {
        let mut l = LeaderLog::default();
        l.sample(1, 3, true);
        l.sample(1, 3, true);
        l.sample(2, 3, false);
        l.sample(2, 4, true);
        l.sample(2, 4, true);
        // One unconfirmed sample (node 1's role read before it learnt term 4) is no claim.
        l.sample(1, 4, true);
        l.sample(1, 4, false);
        assert!(l.check().is_empty(), "{:?}", l.check());
        l.sample(3, 4, true);
        l.sample(3, 4, true);
        let v = l.check();
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("term 4"), "{}", v[0].detail);
    }

    #[test]
    fn login_and_transit_checks_report_what_they_must() {
        let mut h = H::default();
        let login = |s: &str| Op::Login { secret: s.into(), num_uses: 2 };
        h.op(1, 0, 1, login("s1"), Outcome::Ok(Ret::Done))
            .op(2, 0, 1, login("s1"), Outcome::Ok(Ret::Done))
            .op(3, 0, 1, login("s1"), Outcome::Fail(400, "invalid secret id".into()))
            .op(1, 2, 3, login("s2"), Outcome::Ok(Ret::Done));
        assert!(check_logins(&h.0).is_empty());
        h.op(3, 5, 6, login("s1"), Outcome::Ok(Ret::Done));
        assert_eq!(check_logins(&h.0).len(), 1);

        let enc = |p: &str| Op::Encrypt { key: "t".into(), plaintext: p.into() };
        let ct = |version: u64| {
            Outcome::Ok(Ret::Ciphertext { version, ciphertext: format!("vault:v{version}:x") })
        };
        let dec =
            |p: &str| Op::Decrypt { key: "t".into(), ciphertext: "vault:v1:x".into(), plaintext: p.into() };
        let mut h = H::default();
        h.op(1, 0, 1, enc("p"), ct(1))
            .op(1, 2, 3, Op::Rotate { key: "t".into() }, Outcome::Ok(Ret::Done))
            .op(1, 4, 5, enc("q"), ct(2))
            .op(2, 1, 5, enc("q"), ct(1))
            .op(2, 6, 7, dec("p"), Outcome::Ok(Ret::Plaintext("p".into())))
            .op(2, 8, 9, dec("p"), Outcome::Unknown("timeout".into()));
        assert!(check_transit(&h.0).is_empty(), "{:?}", check_transit(&h.0));
        // Stale key version after an acknowledged rotation; a refused and a wrong decryption.
        h.op(1, 10, 11, enc("r"), ct(1))
            .op(2, 12, 13, dec("p"), Outcome::Fail(400, "invalid ciphertext".into()))
            .op(2, 14, 15, dec("p"), Outcome::Ok(Ret::Plaintext("other".into())))
            .op(2, 16, 17, enc("s"), ct(3));
        let v = check_transit(&h.0);
        assert_eq!(v.len(), 4, "{v:?}");
    }

    #[test]
    fn checker_search_handles_many_unknown_writes() {
        // Several clients, many operations and unknown writes sprinkled in: the search must
        // finish quickly on a linearizable history.
        let mut h = H::default();
        let mut version = 0;
        let mut t = 0;
        for i in 0..600u64 {
            t += 10;
            if i % 7 == 3 {
                // Unknown, never applied.
                h.w(3, t, t + 5, &format!("lost{i}"), unknown());
            } else if i % 3 == 0 {
                version += 1;
                h.w(1, t, t + 8, &format!("v{i}"), written(version));
                h.r(2, t + 1, t + 9, val(&format!("v{i}"), version));
            } else {
                h.r(
                    2,
                    t,
                    t + 3,
                    if version == 0 {
                        Outcome::Ok(Ret::NotFound)
                    } else {
                        val(&format!("v{}", last_written(i)), version)
                    },
                );
            }
        }
        fn last_written(i: u64) -> u64 {
            (0..i).rev().find(|j| j % 3 == 0 && j % 7 != 3).unwrap()
        }
        let started = Instant::now();
        assert!(violations(&h).is_empty(), "{:?}", violations(&h));
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
        // The same history with one stale read at its end: found, not given up on.
        h.r(4, t + 100, t + 101, val("v0", 1));
        let v = violations(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].kind, "linearizability", "{}", v[0]);
        assert!(started.elapsed() < std::time::Duration::from_secs(40), "{:?}", started.elapsed());
    }

    #[test]
    fn checker_search_handles_many_unknown_cas_writes() {
        // The chaos soak's shape: cas writes whose outcome is unknown, each made against the
        // version current when it was sent, and never applied. Each can only take effect at
        // its own version; once the register moved past it, it never can. Without merging those
        // dead operations into the memo, every one of them doubled the search (the soak's
        // 4,000-operation keys gave up after 20 M steps).
        let mut h = H::default();
        let mut version = 0;
        let mut t = 0;
        for i in 0..3000u64 {
            t += 10;
            match i % 5 {
                0 | 2 => h.cas(3 + (i % 4) as usize, t, t + 5, &format!("lost{i}"), version, unknown()),
                1 | 3 => {
                    version += 1;
                    h.cas(1, t, t + 40, &format!("v{i}"), version - 1, written(version))
                }
                _ => h.r(2, t, t + 3, val(&format!("v{}", i - 1), version)),
            };
        }
        let started = Instant::now();
        let v = violations(&h);
        assert!(v.is_empty(), "{v:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    }
}
