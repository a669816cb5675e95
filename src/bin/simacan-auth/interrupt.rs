//! Ctrl-C and SIGTERM while the password prompt has the terminal's echo
//! off: the terminal gets its settings back before the run ends.
//!
//! The prompt turns echo off on the controlling terminal and reads from it
//! on a blocking thread. Without a handler, SIGINT or SIGTERM would end the
//! process there and leave the shell without echo. [`Interrupt`] saves the
//! terminal's settings before the prompt and catches both signals; on one,
//! it puts the settings back and the run fails with 130 (Ctrl-C) or 143
//! (SIGTERM), as a shell reports a command a signal ended. It keeps catching
//! them until the run ends, so a Ctrl-C during the login that follows the
//! prompt still ends the run at once.

use std::future::Future;

use crate::exit::{Code, Failure};

/// The terminal's settings from before the prompt, and the signals that
/// must not end the process without putting them back.
pub(crate) struct Interrupt {
    #[cfg(unix)]
    terminal: Option<(std::fs::File, rustix::termios::Termios)>,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(windows)]
    ctrl_c: tokio::signal::windows::CtrlC,
}

impl Interrupt {
    /// Saves the controlling terminal's settings (if there is one) and
    /// starts catching Ctrl-C and SIGTERM.
    pub(crate) fn listen() -> Result<Interrupt, Failure> {
        let cannot = |e: std::io::Error| {
            Failure::new(Code::Other, format!("cannot listen for signals: {e}"))
        };
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Interrupt {
                terminal: saved_terminal(),
                interrupt: signal(SignalKind::interrupt()).map_err(cannot)?,
                terminate: signal(SignalKind::terminate()).map_err(cannot)?,
            })
        }
        #[cfg(windows)]
        {
            Ok(Interrupt {
                ctrl_c: tokio::signal::windows::ctrl_c().map_err(cannot)?,
            })
        }
    }

    /// `work`, unless Ctrl-C or SIGTERM comes first: then the terminal's
    /// settings are put back and the run fails with 130 or 143. So does a
    /// `work` that failed with either code.
    pub(crate) async fn guard<T>(
        &mut self,
        work: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let result = tokio::select! {
            biased;
            code = self.signalled() => Err(interrupted(code)),
            result = work => result,
        };
        if let Err(failure) = &result
            && matches!(failure.code, Code::Interrupted | Code::Terminated)
        {
            self.restore();
        }
        result
    }

    async fn signalled(&mut self) -> Code {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => Code::Interrupted,
            _ = self.terminate.recv() => Code::Terminated,
        }
        #[cfg(windows)]
        {
            self.ctrl_c.recv().await;
            Code::Interrupted
        }
    }

    /// Puts the saved settings back, at once.
    fn restore(&self) {
        #[cfg(unix)]
        if let Some((tty, settings)) = &self.terminal {
            // Nothing better to do if it fails: the run is ending anyway.
            let _ =
                rustix::termios::tcsetattr(tty, rustix::termios::OptionalActions::Now, settings);
        }
    }
}

/// The failure of a run ended by Ctrl-C (`Code::Interrupted`) or SIGTERM.
pub(crate) fn interrupted(code: Code) -> Failure {
    Failure::new(code, "interrupted")
}

/// The controlling terminal and its settings, if the process has one.
#[cfg(unix)]
fn saved_terminal() -> Option<(std::fs::File, rustix::termios::Termios)> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let settings = rustix::termios::tcgetattr(&tty).ok()?;
    Some((tty, settings))
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupt").finish_non_exhaustive()
    }
}
