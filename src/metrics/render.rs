//! The three shapes of `sys/metrics`: the Prometheus text format (version 0.0.4), OpenMetrics
//! text, and Vault's JSON (`Timestamp`, `Gauges`, `Points`, `Counters`, `Samples`).
//!
//! [`families`] lays every metric out once as a list of [`Family`]; the text formats hand that
//! list to `prometheus-client` as a collector, and the JSON format walks it.
//!
//! JSON follows go-metrics' in-memory sink as Vault serves it, with one difference: values are
//! cumulative since the server started (Vault's cover a 10 s interval), so `Rate` is per second
//! of uptime. Counters are increments of one (`Count` = `Sum`, `Min` = `Max` = `Mean` = 1) and
//! `Samples` are in milliseconds, as Vault's timers are.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::route::{ROUTES, STATUS_CLASSES};
use super::{AuditRecord, Metrics, Readings, TimingSnapshot, TokenLookup};

/// Which shape a scrape asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    OpenMetrics,
    Prometheus,
}

/// `Content-Type` of each text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Metric kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One value of a series.
#[derive(Clone, Debug, PartialEq)]
pub enum Sample {
    Counter(u64),
    Gauge(u64),
    Histogram(TimingSnapshot),
}

/// One labelled series of a family.
#[derive(Clone, Debug)]
pub struct Series {
    pub labels: Vec<(&'static str, &'static str)>,
    pub sample: Sample,
}

/// A metric: its name (counters without `_total`, which the encoders add), help and series.
#[derive(Clone, Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub series: Vec<Series>,
}

impl Family {
    fn new(name: &'static str, help: &'static str, kind: Kind) -> Self {
        Self { name, help, kind, series: Vec::new() }
    }

    fn one(name: &'static str, help: &'static str, sample: Sample) -> Self {
        let kind = match sample {
            Sample::Counter(_) => Kind::Counter,
            Sample::Gauge(_) => Kind::Gauge,
            Sample::Histogram(_) => Kind::Histogram,
        };
        Self { name, help, kind, series: vec![Series { labels: Vec::new(), sample }] }
    }

    fn with(mut self, labels: Vec<(&'static str, &'static str)>, sample: Sample) -> Self {
        self.series.push(Series { labels, sample });
        self
    }
}

/// Every metric, recorded and read, in exposition order.
pub fn families(m: &Metrics, r: &Readings) -> Vec<Family> {
    let mut out = Vec::with_capacity(24);
    let mut count = Family::new(
        "coffer_http_requests",
        "HTTP requests answered, by route family and status class.",
        Kind::Counter,
    );
    let mut latency = Family::new(
        "coffer_http_request_duration_seconds",
        "Time to answer an HTTP request, from its first byte read to its reply, by route family and status class.",
        Kind::Histogram,
    );
    let classes = STATUS_CLASSES.len();
    for (slot, timing) in m.requests.iter().enumerate() {
        if timing.count() == 0 {
            continue;
        }
        let labels = vec![("route", ROUTES[slot / classes]), ("status", STATUS_CLASSES[slot % classes])];
        let snap = timing.snapshot();
        count.series.push(Series { labels: labels.clone(), sample: Sample::Counter(snap.count) });
        latency.series.push(Series { labels, sample: Sample::Histogram(snap) });
    }
    out.push(count);
    out.push(latency);

    let mut lookups = Family::new("coffer_token_lookups", "Token lookups by what they found.", Kind::Counter);
    for (i, result) in TokenLookup::ALL.iter().enumerate() {
        lookups = lookups.with(vec![("result", result.label())], Sample::Counter(m.token_lookups[i].get()));
    }
    out.push(lookups);
    out.push(
        Family::new(
            "coffer_audit_failures",
            "Audit records no device could write (the request failed closed).",
            Kind::Counter,
        )
        .with(
            vec![("record", "request")],
            Sample::Counter(m.audit_failures[AuditRecord::Request as usize].get()),
        )
        .with(
            vec![("record", "response")],
            Sample::Counter(m.audit_failures[AuditRecord::Response as usize].get()),
        ),
    );
    out.push(Family::one(
        "coffer_core_unsealed",
        "1 when the node is unsealed, 0 when sealed.",
        Sample::Gauge(u64::from(r.unsealed)),
    ));
    let b = &r.barrier;
    out.push(Family::one(
        "coffer_barrier_encryptions",
        "Values encrypted by the barrier since the server started.",
        Sample::Counter(b.encryptions),
    ));
    out.push(Family::one(
        "coffer_barrier_decryptions",
        "Values decrypted by the barrier since the server started.",
        Sample::Counter(b.decryptions),
    ));
    out.push(Family::one(
        "coffer_barrier_decrypt_failures",
        "Stored values that failed to decrypt (damaged, moved or unknown key term).",
        Sample::Counter(b.decrypt_failures),
    ));
    if let Some(c) = &r.cluster {
        let gauge = Sample::Gauge;
        out.push(Family::one(
            "coffer_raft_is_leader",
            "1 when this node is the Raft leader.",
            gauge(u64::from(c.is_leader)),
        ));
        out.push(Family::one("coffer_raft_term", "Current Raft term.", gauge(c.term)));
        out.push(Family::one(
            "coffer_raft_last_log_index",
            "Index of the last entry in this node's log.",
            gauge(c.last_log_index),
        ));
        out.push(Family::one(
            "coffer_raft_commit_index",
            "Highest log index known to be committed.",
            gauge(c.commit_index),
        ));
        out.push(Family::one(
            "coffer_raft_applied_index",
            "Highest log index applied to this node's state machine.",
            gauge(c.applied_index),
        ));
        out.push(Family::one(
            "coffer_raft_leader_changes",
            "Times this node saw the cluster's leader change.",
            Sample::Counter(c.leader_changes),
        ));
        out.push(Family::one(
            "coffer_raft_snapshot_installs",
            "Snapshots this node installed from the leader.",
            Sample::Counter(c.snapshot_installs),
        ));
        out.push(Family::one(
            "coffer_raft_read_index_rounds",
            "Read barriers this node ran for linearizable reads (concurrent reads share one round).",
            Sample::Counter(c.read_index_rounds),
        ));
        out.push(Family::one(
            "coffer_raft_lease_reads",
            "Read indexes this node answered as the leader from its lease, without a heartbeat round.",
            Sample::Counter(c.lease_reads),
        ));
        out.push(Family::one(
            "coffer_raft_commit_duration_seconds",
            "Time from proposing a write on this node (the leader) until it was committed and applied.",
            Sample::Histogram(c.commit_latency.clone()),
        ));
        out.push(
            Family::new(
                "coffer_cluster_forwarded_requests",
                "Requests this node forwarded to the leader, by outcome.",
                Kind::Counter,
            )
            .with(vec![("result", "ok")], Sample::Counter(c.forwarded))
            .with(vec![("result", "error")], Sample::Counter(c.forward_failures)),
        );
    }
    out.retain(|f| !f.series.is_empty());
    out
}

/// The families as a `prometheus-client` collector.
#[derive(Debug)]
struct Exposition(Vec<Family>);

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let kind = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut family = encoder.encode_descriptor(f.name, f.help, None, kind)?;
            for s in &f.series {
                let mut m = family.encode_family(&s.labels)?;
                match &s.sample {
                    Sample::Counter(v) => m.encode_counter::<NoLabelSet, _, u64>(v, None)?,
                    Sample::Gauge(v) => m.encode_gauge(v)?,
                    Sample::Histogram(h) => {
                        m.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?
                    }
                }
            }
        }
        Ok(())
    }
}

/// Encodes `families` in a text format (`Json` is not one: see [`json`]).
pub fn text(families: Vec<Family>, format: Format) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition(families)));
    let mut out = String::new();
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry)?,
        Format::Prometheus | Format::Json => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?
        }
    }
    Ok(out)
}

/// Go's `time.Time.String()` of a UTC time, as Vault's `Timestamp` reads.
fn go_time(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Vault's JSON shape of `families`, `uptime_secs` after the server started, at `now`.
pub fn json(families: &[Family], uptime_secs: f64, now: OffsetDateTime) -> Value {
    let per_sec = |v: f64| if uptime_secs > 0.0 { v / uptime_secs } else { 0.0 };
    let (mut gauges, mut counters, mut samples) = (Vec::new(), Vec::new(), Vec::new());
    for f in families {
        for s in &f.series {
            let labels: Map<String, Value> =
                s.labels.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect();
            match &s.sample {
                Sample::Gauge(v) => gauges.push(json!({ "Name": f.name, "Value": v, "Labels": labels })),
                Sample::Counter(v) => {
                    let unit = if *v > 0 { 1 } else { 0 };
                    counters.push(json!({
                        "Name": f.name, "Count": v, "Rate": per_sec(*v as f64), "Sum": v,
                        "Min": unit, "Max": unit, "Mean": unit, "Stddev": 0, "Labels": labels,
                    }))
                }
                Sample::Histogram(h) => {
                    let ms = |secs: f64| secs * 1000.0;
                    samples.push(json!({
                        "Name": f.name, "Count": h.count, "Rate": per_sec(ms(h.sum)), "Sum": ms(h.sum),
                        "Min": ms(h.min), "Max": ms(h.max), "Mean": ms(h.mean()),
                        "Stddev": ms(h.stddev()), "Labels": labels,
                    }))
                }
            }
        }
    }
    json!({
        "Timestamp": go_time(now),
        "Gauges": gauges,
        "Points": [],
        "Counters": counters,
        "Samples": samples,
    })
}

#[cfg(test)]
mod tests;
