//! `simacan-auth mock`: the library's [`MockAuthApi`] as a server of its
//! own, for services, scripts and runs of this tool that need a Simacan
//! stand-in. It prints where it listens and what it accepts, then serves
//! until Ctrl-C or SIGTERM and exits 0.

use std::io::Write;

use simacan_auth::mock::MockAuthApi;

use crate::{
    args::{Format, MockArgs},
    exit::{Code, Failure},
};

pub(crate) async fn serve(args: MockArgs) -> Result<Code, Failure> {
    // Listening for the signals before saying it is ready: a script that
    // stops the mock as soon as it has read the URLs gets a clean stop.
    let stop = Stop::listen()
        .map_err(|e| Failure::new(Code::Other, format!("cannot listen for signals: {e}")))?;
    let mock = MockAuthApi::builder()
        .listen(args.listen)
        .start()
        .await
        .map_err(|e| {
            let code = match e.kind() {
                std::io::ErrorKind::InvalidInput => Code::Usage,
                _ => Code::Other,
            };
            Failure::new(code, format!("cannot listen on {}: {e}", args.listen))
        })?;
    let credentials = mock.credentials();
    let output = match args.format {
        Format::Json => {
            let json = serde_json::json!({
                "addr": mock.addr().to_string(),
                "auth_url": mock.base_url(),
                "target_url": mock.url(""),
                "control_url": mock.control_url(),
                "username": credentials.username(),
                "password": simacan_auth::mock::PASSWORD,
            });
            format!("{json}\n")
        }
        Format::Text => format!(
            "auth url:    {}\ntarget url:  {}\ncontrol url: {}\nusername:    {}\npassword:    {}\n",
            mock.base_url(),
            mock.url(""),
            mock.control_url(),
            credentials.username(),
            simacan_auth::mock::PASSWORD,
        ),
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::new(Code::Other, format!("cannot write the urls: {e}")))?;
    drop(stdout);
    if args.format == Format::Text {
        eprintln!(
            "simacan-auth: mock listening on {}; stop it with Ctrl-C",
            mock.addr()
        );
    }
    stop.requested().await;
    drop(mock);
    eprintln!("simacan-auth: mock stopped");
    Ok(Code::Success)
}

/// Ctrl-C, and SIGTERM on Unix, registered from the start.
struct Stop {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(windows)]
    ctrl_c: tokio::signal::windows::CtrlC,
}

impl Stop {
    fn listen() -> std::io::Result<Stop> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Stop {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(windows)]
        {
            Ok(Stop {
                ctrl_c: tokio::signal::windows::ctrl_c()?,
            })
        }
    }

    async fn requested(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(windows)]
        self.ctrl_c.recv().await;
    }
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop").finish_non_exhaustive()
    }
}
