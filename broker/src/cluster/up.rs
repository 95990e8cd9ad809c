//! `phxq cluster up`: runs every node of a local cluster (`<config-dir>/node*.toml`) as a
//! child process of this same binary (`phxq serve --config FILE --data-dir BASE/nodeN`),
//! prefixes each line they print with the node's name, and stops them together on Ctrl-C
//! or SIGTERM (SIGTERM to every node, then SIGKILL to those still running after
//! `--stop-timeout-s`, or at once on a second Ctrl-C).
//!
//! A node that fails while starting (exits with an error within its first seconds: a port
//! in use, a bad data directory) stops the whole cluster. A node that dies later (for
//! example `kill -9` while trying out failover) is reported with the command that restarts
//! it, and the others keep running; `cluster up` ends when every node has stopped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::config::Config;

/// A node exiting with an error this soon after it was started failed to start.
const STARTUP_WINDOW: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Directory holding one `nodeN.toml` per node.
    #[arg(long, default_value = "config/cluster")]
    pub config_dir: PathBuf,
    /// Each node keeps its data in DIR/nodeN.
    #[arg(long, default_value = "data/cluster")]
    pub data_dir_base: PathBuf,
    /// Seconds to wait for the nodes to stop after SIGTERM before killing them.
    #[arg(long, default_value_t = 20)]
    pub stop_timeout_s: u64,
}

/// One node's configuration file, found in the config directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeFile {
    /// `nodeN`, from the file name: the prefix of its output and its data directory.
    name: String,
    path: PathBuf,
}

struct Running {
    file: NodeFile,
    data_dir: PathBuf,
    pid: i32,
    started: Instant,
    exited: bool,
}

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let files = node_files(&args.config_dir)?;
    for f in &files {
        let config = Config::from_file(&f.path)?;
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", f.path.display()))?;
        if config.cluster.is_none() {
            eprintln!(
                "phxq cluster: warning: {} has no [cluster] table; that node will run alone",
                f.path.display()
            );
        }
    }
    // One thread: the children are forked from it, so PR_SET_PDEATHSIG (which follows the
    // forking thread) fires exactly when this process dies.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(up(files, args))
}

/// `node*.toml` files of the directory, ordered by their number (`node2` before `node10`).
fn node_files(dir: &Path) -> anyhow::Result<Vec<NodeFile>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read config dir {}: {e}", dir.display()))?;
    let mut found = BTreeMap::new();
    for entry in entries {
        let path = entry?.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".toml"))
        else {
            continue;
        };
        if let Some(n) = stem
            .strip_prefix("node")
            .and_then(|d| d.parse::<u64>().ok())
        {
            found.insert(
                n,
                NodeFile {
                    name: stem.to_string(),
                    path,
                },
            );
        }
    }
    anyhow::ensure!(
        !found.is_empty(),
        "no node files (node1.toml, node2.toml, ...) in {}",
        dir.display()
    );
    Ok(found.into_values().collect())
}

async fn up(files: Vec<NodeFile>, args: UpArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let (exits, mut exited) = mpsc::unbounded_channel::<(usize, std::io::Result<ExitStatus>)>();
    let mut nodes = Vec::new();
    let mut forwarders = Vec::new();
    for (i, file) in files.into_iter().enumerate() {
        let data_dir = args.data_dir_base.join(&file.name);
        let mut cmd = Command::new(&exe);
        cmd.arg("serve")
            .arg("--config")
            .arg(&file.path)
            .arg("--data-dir")
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C in the terminal reaches only us, and we stop
            // the nodes in order.
            .process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // If `cluster up` itself is killed, the nodes get SIGTERM instead of lingering.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                stop(&mut nodes, &mut exited, &mut sigint, args.stop_timeout_s).await;
                anyhow::bail!("cannot start {}: {e}", file.name);
            }
        };
        let pid = child.id().map(|p| p as i32).unwrap_or(-1);
        let prefix = format!("{:<7}| ", file.name);
        if let Some(out) = child.stdout.take() {
            forwarders.push(tokio::spawn(forward(out, prefix.clone(), false)));
        }
        if let Some(err) = child.stderr.take() {
            forwarders.push(tokio::spawn(forward(err, prefix, true)));
        }
        let tx = exits.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = tx.send((i, status));
        });
        say(&format!(
            "started {} (pid {pid}): {} serve --config {} --data-dir {}",
            file.name,
            exe.display(),
            file.path.display(),
            data_dir.display()
        ));
        nodes.push(Running {
            file,
            data_dir,
            pid,
            started: Instant::now(),
            exited: false,
        });
    }
    say("Ctrl-C stops every node");

    let mut failure = None;
    loop {
        tokio::select! {
            Some((i, status)) = exited.recv() => {
                let node = &mut nodes[i];
                node.exited = true;
                let left = nodes.iter().filter(|n| !n.exited).count();
                let node = &nodes[i];
                let how = describe(&status);
                if failed_to_start(&status, node.started.elapsed()) {
                    say(&format!("{} failed to start ({how}); stopping the others", node.file.name));
                    failure = Some(format!("{} failed to start ({how})", node.file.name));
                    break;
                }
                say(&format!(
                    "{} (pid {}) {how}; {left} node(s) still running. Restart it with: {} serve --config {} --data-dir {}",
                    node.file.name,
                    node.pid,
                    exe.display(),
                    node.file.path.display(),
                    node.data_dir.display()
                ));
                if left == 0 {
                    failure = Some("every node has exited".to_string());
                    break;
                }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    stop(&mut nodes, &mut exited, &mut sigint, args.stop_timeout_s).await;
    // The nodes' last lines (e.g. "stopped") before ours.
    for f in forwarders {
        let _ = tokio::time::timeout(Duration::from_secs(2), f).await;
    }
    match failure {
        Some(f) => anyhow::bail!("{f}"),
        None => {
            say("all nodes stopped");
            Ok(())
        }
    }
}

/// SIGTERM to every running node, then wait; SIGKILL on a timeout or a second Ctrl-C.
async fn stop(
    nodes: &mut [Running],
    exited: &mut mpsc::UnboundedReceiver<(usize, std::io::Result<ExitStatus>)>,
    sigint: &mut tokio::signal::unix::Signal,
    timeout_s: u64,
) {
    let running = |nodes: &[Running]| nodes.iter().filter(|n| !n.exited).count();
    if running(nodes) == 0 {
        return;
    }
    say(&format!(
        "stopping {} node(s) (SIGTERM; Ctrl-C again to kill)",
        running(nodes)
    ));
    signal_all(nodes, libc::SIGTERM);
    let deadline = tokio::time::sleep(Duration::from_secs(timeout_s));
    tokio::pin!(deadline);
    let mut killed = false;
    while running(nodes) > 0 {
        tokio::select! {
            Some((i, status)) = exited.recv() => {
                nodes[i].exited = true;
                say(&format!("{} {}", nodes[i].file.name, describe(&status)));
            }
            _ = &mut deadline, if !killed => {
                say(&format!("still running after {timeout_s}s: killing (SIGKILL)"));
                signal_all(nodes, libc::SIGKILL);
                killed = true;
            }
            _ = sigint.recv(), if !killed => {
                say("killing (SIGKILL)");
                signal_all(nodes, libc::SIGKILL);
                killed = true;
            }
        }
    }
}

fn signal_all(nodes: &[Running], sig: libc::c_int) {
    for n in nodes.iter().filter(|n| !n.exited && n.pid > 0) {
        // SAFETY: kill(2) on the pid of our own child, not yet reaped (its exit has not been
        // reported), so the pid cannot have been reused.
        unsafe {
            libc::kill(n.pid, sig);
        }
    }
}

fn failed_to_start(status: &std::io::Result<ExitStatus>, ran: Duration) -> bool {
    match status {
        Ok(s) => s.code().is_some_and(|c| c != 0) && ran < STARTUP_WINDOW,
        Err(_) => true,
    }
}

fn describe(status: &std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(0), _) => "stopped".to_string(),
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(libc::SIGKILL)) => "was killed (SIGKILL)".to_string(),
            (None, Some(libc::SIGTERM)) => "was killed (SIGTERM)".to_string(),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            (None, None) => format!("exited ({s})"),
        },
        Err(e) => format!("could not be waited for: {e}"),
    }
}

/// A line of our own, told apart from the nodes' lines.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "phxq cluster: {msg}");
}

/// Copies a child's output line by line, each line prefixed with the node's name.
async fn forward(stream: impl AsyncRead + Unpin, prefix: String, to_stderr: bool) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if line.last() != Some(&b'\n') {
                    line.push(b'\n');
                }
                let mut out = prefix.as_bytes().to_vec();
                out.extend_from_slice(&line);
                // One write per line under the lock: lines of different nodes never mix.
                let _ = if to_stderr {
                    std::io::stderr().lock().write_all(&out)
                } else {
                    std::io::stdout().lock().write_all(&out)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_files_are_ordered_by_number() {
        let dir = std::env::temp_dir().join(format!("phxq-up-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "node10.toml",
            "node2.toml",
            "node1.toml",
            "single.toml",
            "nodeX.toml",
        ] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let names: Vec<String> = node_files(&dir)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["node1", "node2", "node10"]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(node_files(&dir).is_err());
    }

    #[test]
    fn startup_failures_are_told_apart_from_later_deaths() {
        use std::os::unix::process::ExitStatusExt;
        let code2 = Ok(ExitStatus::from_raw(2 << 8));
        let killed = Ok(ExitStatus::from_raw(libc::SIGKILL));
        assert!(failed_to_start(&code2, Duration::from_secs(1)));
        assert!(!failed_to_start(&code2, Duration::from_secs(60)));
        assert!(!failed_to_start(&killed, Duration::from_secs(1)));
        assert_eq!(describe(&killed), "was killed (SIGKILL)");
        assert_eq!(describe(&code2), "exited with code 2");
    }
}
