//! Running a child process and measuring it: wall time, peak resident memory, output.

use std::fs::File;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// What one finished child did.
pub struct Measured {
    /// From spawn to reaping.
    pub wall: Duration,
    /// The child's peak resident set (`ru_maxrss`), in bytes.
    pub peak_rss: u64,
    /// The child's user + system CPU time: against `wall`, it shows how much of the
    /// machine the child got while others' processes were running.
    pub cpu: Duration,
    pub stdout: String,
    pub stderr: String,
}

impl Measured {
    /// The values of every `key value` line of stdout and stderr, in order.
    pub fn values(&self, key: &str) -> Vec<f64> {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .filter_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
            .filter_map(|v| v.trim().parse().ok())
            .collect()
    }

    /// The first line of stdout or stderr starting with `prefix`.
    pub fn line(&self, prefix: &str) -> Option<&str> {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .find(|l| l.starts_with(prefix))
    }
}

/// Runs `cmd` to completion and measures it; fails (with the end of its stderr) unless it
/// exits 0. Output goes to temporary files rather than pipes, so nothing has to drain them
/// while we block in `wait4`.
pub fn measure(cmd: &mut Command) -> Result<Measured> {
    let mut out = tempfile::tempfile()?;
    let mut err = tempfile::tempfile()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(err.try_clone()?));
    let start = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let (status, peak_rss, cpu) = wait4(child.id())?;
    let wall = start.elapsed();
    let stdout = read_back(&mut out)?;
    let stderr = read_back(&mut err)?;
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{cmd:?} failed (wait status {status}):\n{}",
            tail.join("\n")
        );
    }
    Ok(Measured {
        wall,
        peak_rss,
        cpu,
        stdout,
        stderr,
    })
}

/// Reaps `pid` with `wait4`, which, unlike `Child::wait`, also returns the child's own
/// resource usage (so other children of this process do not mix in, as they would with
/// `getrusage(RUSAGE_CHILDREN)`). Returns the wait status, peak RSS in bytes and CPU time.
fn wait4(pid: u32) -> Result<(i32, u64, Duration)> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("wait4");
        }
    }
    // Linux reports ru_maxrss in KiB.
    let kib = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
    Ok((status, kib * 1024, cpu))
}

fn timeval(t: libc::timeval) -> Duration {
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let micros = u32::try_from(t.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
}

fn read_back(file: &mut File) -> Result<String> {
    use std::io::Seek;
    file.rewind()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The system load averages (1, 5, 15 minutes) as `/proc/loadavg` shows them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child_and_parses_its_lines() -> Result<()> {
        let m = measure(Command::new("sh").args([
            "-c",
            "echo 'forward_seconds 1.5'; echo 'forward_seconds 2' >&2",
        ]))?;
        assert_eq!(m.values("forward_seconds"), vec![1.5, 2.0]);
        assert!(m.peak_rss > 0);
        assert!(m.cpu <= m.wall * 2 + Duration::from_millis(50));
        Ok(())
    }

    #[test]
    fn a_failing_child_is_an_error() {
        assert!(measure(Command::new("sh").args(["-c", "exit 3"])).is_err());
    }
}
