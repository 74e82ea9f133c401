//! `coffer run` and `coffer inject`: resolve `vault:` / `env:` / `file:` references into a child
//! process's environment or into a rendered file. Fail closed: any reference that does not
//! resolve stops the command with a non-zero exit (unless `--allow-missing` names it). Messages
//! name references, never values.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use zeroize::Zeroizing;

use super::{usage, Invocation};
use crate::resolve::{Document, Format, Layers, Reference, Resolver, SettingsBuilder};

/// Arguments of `coffer run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A `.env` file whose variables are added to the child's environment (references resolved).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// A TOML/JSON/YAML file whose `[vault]` section holds resolver settings.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Re-resolve on this interval (e.g. `30s`, `5m`) and notify the child when a value changed.
    #[arg(long, value_name = "INTERVAL")]
    pub watch: Option<String>,
    /// Signal sent to the child when a value changed (with --watch).
    #[arg(long, value_name = "SIGNAL", default_value = "SIGHUP")]
    pub signal: String,
    /// Restart the child instead of signalling it when a value changed (with --watch).
    #[arg(long)]
    pub restart: bool,
    /// A reference that may fail to resolve (it is then passed on as written). Repeatable.
    #[arg(long = "allow-missing", value_name = "REF")]
    pub allow_missing: Vec<String>,
    /// Also render TEMPLATE to OUT (as `coffer inject` does) before starting the command, and
    /// again on every --watch tick; a changed file counts as a changed value. Repeatable.
    #[arg(long = "template", value_name = "TEMPLATE:OUT")]
    pub templates: Vec<String>,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Arguments of `coffer inject`.
#[derive(Debug, Args)]
pub struct InjectArgs {
    /// The template document (TOML, JSON, YAML or .env).
    #[arg(short = 'i', long = "in", value_name = "TEMPLATE")]
    pub input: PathBuf,
    /// Where to write the rendered document (mode 0600, replaced atomically).
    #[arg(short = 'o', long = "out", value_name = "OUT", required_unless_present = "check")]
    pub output: Option<PathBuf>,
    /// Document format when the file name does not tell (toml, json, yaml, env).
    #[arg(long = "type", value_name = "FORMAT")]
    pub doc_format: Option<String>,
    /// A file whose `[vault]` section holds resolver settings (default: the template's own).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only report the references that do not resolve (no values printed, nothing written).
    #[arg(long)]
    pub check: bool,
    /// A reference that may fail to resolve (left as written). Repeatable.
    #[arg(long = "allow-missing", value_name = "REF")]
    pub allow_missing: Vec<String>,
}

/// Resolver settings: flags, then the document's `vault` section, then the environment, with
/// the document held to S26 (it cannot send the operator's token elsewhere; see
/// [`Layers`](crate::resolve::Layers)).
fn settings(inv: &Invocation, doc: Option<&Document>) -> anyhow::Result<crate::resolve::Settings> {
    let caller = SettingsBuilder {
        address: inv.global.address.clone(),
        ca_cert: inv.global.ca_cert.as_ref().map(|p| p.to_string_lossy().into_owned()),
        skip_verify: inv.global.tls_skip_verify.then_some(true),
        ..SettingsBuilder::default()
    };
    let document = doc.map(SettingsBuilder::from_document).unwrap_or_default();
    Ok(Layers { caller, document, env: SettingsBuilder::from_env() }.build()?)
}

fn load_document(path: &Path, format: Option<&str>) -> anyhow::Result<Document> {
    let fmt = match format {
        Some(f) => Format::from_name(f)
            .ok_or_else(|| usage(format!("unknown document type {f:?} (toml, json, yaml, env)")))?,
        None => Format::from_path(path).ok_or_else(|| {
            usage(format!("cannot tell the format of {} from its name; pass --type", path.display()))
        })?,
    };
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    Document::parse(fmt, &text).with_context(|| format!("in {}", path.display()))
}

fn report(errors: &[crate::resolve::ResolveError]) -> anyhow::Error {
    let mut msg = format!("{} reference(s) did not resolve:", errors.len());
    for e in errors {
        msg.push_str(&format!("\n  {e}"));
    }
    anyhow::anyhow!(msg)
}

/// Writes `data` to `out` with mode 0600: a temporary file in the same directory, fsync,
/// rename over `out`, fsync the directory.
pub fn write_atomically(out: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().ok_or_else(|| usage(format!("{} is not a file path", out.display())))?;
    let tmp = dir.join(format!(".{}.coffer-{}", name.to_string_lossy(), uuid::Uuid::new_v4().simple()));
    let result = (|| -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, out).with_context(|| format!("cannot replace {}", out.display()))?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `coffer inject`.
pub async fn inject(inv: &Invocation, a: InjectArgs) -> anyhow::Result<u8> {
    let mut doc = load_document(&a.input, a.doc_format.as_deref())?;
    let cfg_doc = match &a.config {
        Some(p) => Some(load_document(p, None)?),
        None => None,
    };
    let resolver = Resolver::new(settings(inv, Some(cfg_doc.as_ref().unwrap_or(&doc)))?)?;
    if a.check {
        let strings = doc.strings();
        let refs =
            strings.iter().filter(|s| Reference::parse(s).map(|r| r.is_reference()).unwrap_or(true)).count();
        let (_, errors) = resolver.resolve_all(&strings).await;
        let fatal: Vec<_> =
            errors.into_iter().filter(|e| !a.allow_missing.iter().any(|m| m == &e.reference)).collect();
        if fatal.is_empty() {
            println!("all {refs} reference(s) in {} resolve", a.input.display());
            return Ok(0);
        }
        for e in &fatal {
            println!("{e}");
        }
        return Ok(1);
    }
    let out = a.output.as_ref().ok_or_else(|| usage("-o OUT is required unless --check"))?;
    resolver.resolve_document(&mut doc, &a.allow_missing).await.map_err(|errs| report(&errs))?;
    let rendered = doc.render();
    write_atomically(out, rendered.as_bytes())?;
    Ok(0)
}

/// Resolves the environment variables (and `--env-file` entries) that hold references.
async fn resolved_env(
    resolver: &Resolver,
    a: &RunArgs,
) -> anyhow::Result<BTreeMap<String, Zeroizing<String>>> {
    let mut vars: BTreeMap<String, String> = std::env::vars().collect();
    for f in &a.env_files {
        let doc = load_document(f, Some("env"))?;
        for (k, v) in doc.env_pairs() {
            vars.insert(k, v);
        }
    }
    let candidates: Vec<String> = vars
        .values()
        .filter(|v| Reference::parse(v).map(|r| r.is_reference() || v.starts_with('\\')).unwrap_or(true))
        .cloned()
        .collect();
    let (values, errors) = resolver.resolve_all(&candidates).await;
    let fatal: Vec<_> =
        errors.into_iter().filter(|e| !a.allow_missing.iter().any(|m| m == &e.reference)).collect();
    if !fatal.is_empty() {
        return Err(report(&fatal));
    }
    Ok(vars
        .into_iter()
        .map(|(k, v)| {
            let resolved = values
                .get(&v)
                .map(|x| Zeroizing::new(x.as_str().to_owned()))
                .unwrap_or_else(|| Zeroizing::new(v));
            (k, resolved)
        })
        .collect())
}

fn parse_signal(name: &str) -> anyhow::Result<nix::sys::signal::Signal> {
    let upper = name.to_uppercase();
    let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    full.parse::<nix::sys::signal::Signal>().map_err(|_| usage(format!("unknown signal {name:?}")))
}

fn command(a: &RunArgs, env: &BTreeMap<String, Zeroizing<String>>) -> std::process::Command {
    let mut cmd = std::process::Command::new(&a.command[0]);
    cmd.args(&a.command[1..]).env_clear();
    for (k, v) in env {
        cmd.env(k, v.as_str());
    }
    cmd
}

fn template_pairs(a: &RunArgs) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    a.templates
        .iter()
        .map(|t| {
            let (i, o) =
                t.split_once(':').ok_or_else(|| usage(format!("--template {t:?}: expected TEMPLATE:OUT")))?;
            Ok((PathBuf::from(i), PathBuf::from(o)))
        })
        .collect()
}

/// Renders every `--template`; returns whether any output changed.
async fn render_templates(resolver: &Resolver, a: &RunArgs) -> anyhow::Result<bool> {
    let mut changed = false;
    for (input, out) in template_pairs(a)? {
        let mut doc = load_document(&input, None)?;
        resolver.resolve_document(&mut doc, &a.allow_missing).await.map_err(|errs| report(&errs))?;
        let rendered = doc.render();
        let old = std::fs::read(&out).ok().map(Zeroizing::new);
        if old.as_deref().map(|o| o.as_slice()) != Some(rendered.as_bytes()) {
            write_atomically(&out, rendered.as_bytes())?;
            changed = true;
        }
    }
    Ok(changed)
}

/// `coffer run`.
pub async fn run(inv: &Invocation, a: RunArgs) -> anyhow::Result<u8> {
    let cfg_doc = match &a.config {
        Some(p) => Some(load_document(p, None)?),
        None => None,
    };
    let resolver = Resolver::new(settings(inv, cfg_doc.as_ref())?)?;
    let env = resolved_env(&resolver, &a).await?;
    render_templates(&resolver, &a).await?;
    let Some(interval) = &a.watch else {
        // No watching: become the command, so signals, stdin/stdout and the exit status are the
        // command's own.
        use std::os::unix::process::CommandExt;
        let err = command(&a, &env).exec();
        bail!("cannot run {}: {err}", a.command[0]);
    };
    let every = crate::util::duration::parse_str_seconds_signed(interval)
        .map_err(|e| usage(format!("--watch: {e}")))?;
    if every <= 0 {
        return Err(usage("--watch needs a positive interval"));
    }
    let sig = parse_signal(&a.signal)?;
    watch(&resolver, &a, env, Duration::from_secs(every as u64), sig).await
}

fn exit_status_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(s)) => (128 + s) as u8,
        _ => 1,
    }
}

async fn watch(
    resolver: &Resolver,
    a: &RunArgs,
    mut env: BTreeMap<String, Zeroizing<String>>,
    every: Duration,
    sig: nix::sys::signal::Signal,
) -> anyhow::Result<u8> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut child = tokio::process::Command::from(command(a, &env))
        .spawn()
        .with_context(|| format!("cannot run {}", a.command[0]))?;
    let forwarded = [
        SignalKind::hangup(),
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::quit(),
        SignalKind::user_defined1(),
        SignalKind::user_defined2(),
    ];
    let mut streams = Vec::new();
    for k in forwarded {
        streams.push((k, signal(k)?));
    }
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        let next_signal = async {
            let futs = streams.iter_mut().map(|(k, s)| Box::pin(async move { s.recv().await.map(|_| *k) }));
            futures_select(futs).await
        };
        tokio::select! {
            status = child.wait() => return Ok(exit_status_code(status?)),
            Some(kind) = next_signal => {
                if let Some(pid) = child.id() {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::try_from(kind.as_raw_value()).ok());
                }
            }
            _ = tick.tick() => {
                let refreshed = match resolved_env(resolver, a).await {
                    Ok(new_env) => render_templates(resolver, a).await.map(|files| (new_env, files)),
                    Err(e) => Err(e),
                };
                match refreshed {
                    Ok((new_env, files_changed)) => {
                        let changed = files_changed
                            || new_env.len() != env.len()
                            || new_env.iter().any(|(k, v)| env.get(k).map(|o| o.as_str() != v.as_str()).unwrap_or(true));
                        if !changed {
                            continue;
                        }
                        env = new_env;
                        if a.restart {
                            let _ = child.kill().await;
                            child = tokio::process::Command::from(command(a, &env)).spawn().with_context(|| format!("cannot restart {}", a.command[0]))?;
                            tracing::info!("a referenced value changed; restarted the command");
                        } else if let Some(pid) = child.id() {
                            // The child re-reads its configuration on the signal; its environment
                            // cannot change, so it should re-run `coffer inject` or read files.
                            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
                            tracing::info!(signal = %sig, "a referenced value changed; signalled the command");
                        }
                    }
                    // Keep the child running on the values it has; say why in one line.
                    Err(e) => eprintln!("coffer run: re-resolving failed (keeping current values): {e:#}"),
                }
            }
        }
    }
}

/// The first of several futures to complete.
async fn futures_select<F, T>(futs: impl IntoIterator<Item = F>) -> Option<T>
where
    F: std::future::Future<Output = Option<T>> + Unpin,
{
    let futs: Vec<F> = futs.into_iter().collect();
    if futs.is_empty() {
        return None;
    }
    let mut futs = futs;
    std::future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}
