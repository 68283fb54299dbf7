//! One app's `node` process: started in its own process group, its port read
//! from its first line of output, stopped by signalling the whole group.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How a start went wrong.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `node` could not be run.
    #[error("could not run `{program}` in {dir}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The app directory.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// The process exited before it listened.
    #[error("the process exited with {status} before listening (its stderr is in {log})")]
    Exited {
        /// Its exit status.
        status: String,
        /// Where its stderr went.
        log: String,
    },
    /// It did not print `listening PORT` in time.
    #[error("the process printed no `listening PORT` line within {0:?}")]
    NoPort(Duration),
}

/// A running app process (the leader of its own process group). Dropping it
/// kills the group.
#[derive(Debug)]
pub struct AppProcess {
    child: Child,
    pid: Option<Pid>,
    port: u16,
}

impl AppProcess {
    /// Starts `node server.js` in `dir` with `env`, stderr to `dir/app.log`,
    /// and waits up to `timeout` for its port.
    pub async fn start(
        node: &str,
        dir: &Path,
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<AppProcess, StartError> {
        let log_path = dir.join("app.log");
        let spawn_error = |source| StartError::Spawn {
            program: node.to_owned(),
            dir: dir.display().to_string(),
            source,
        };
        let log = std::fs::File::create(&log_path).map_err(spawn_error)?;
        let mut command = Command::new(node);
        command
            .arg("server.js")
            .current_dir(dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(spawn_error)?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw);
        let stdout = child.stdout.take();
        let read_port = async {
            let mut lines = BufReader::new(stdout?).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(port) = line.strip_prefix("listening ") {
                    return port.trim().parse::<u16>().ok();
                }
            }
            None
        };
        let port = tokio::time::timeout(timeout, read_port).await;
        let mut process = AppProcess {
            child,
            pid,
            port: 0,
        };
        match port {
            Ok(Some(port)) => {
                process.port = port;
                Ok(process)
            }
            Ok(None) => {
                let status = match tokio::time::timeout(
                    Duration::from_secs(5),
                    process.child.wait(),
                )
                .await
                {
                    Ok(Ok(status)) => status.to_string(),
                    _ => "no exit status".to_owned(),
                };
                process.kill();
                Err(StartError::Exited {
                    status,
                    log: log_path.display().to_string(),
                })
            }
            Err(_elapsed) => {
                process.kill();
                Err(StartError::NoPort(timeout))
            }
        }
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether it has exited.
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM to the group, SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.pid {
            let _ = kill_process_group(pid, Signal::TERM);
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            self.kill();
            let _ = self.child.wait().await;
        }
    }

    /// SIGKILL to the whole group, at once.
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid {
            let _ = kill_process_group(pid, Signal::KILL);
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}
