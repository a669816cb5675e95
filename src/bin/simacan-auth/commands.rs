//! The subcommands, each a few calls into the library: a
//! [`SimacanAuthLayer`] on a [`FileStore`] for `token` and `login`, the
//! store itself for `status` and `logout`; `mock` has a module of its own.

use std::{
    io::Write,
    time::{Duration, SystemTime},
};

use simacan_auth::{
    AccessToken, Credentials, Environment, Error, ErrorKind, SimacanAuthLayer,
    store::{FileStore, StoreKey, TokenStore},
};

use crate::{
    args::{Cli, Command, Common, Format, LoginArgs, Renewal, StatusArgs, TokenArgs},
    exit::{Code, Failure},
    interrupt::Interrupt,
    password::Password,
    time::{human, rfc3339},
};

/// Whose token, where, kept in which store.
struct Account {
    environment: Environment,
    username: String,
    store: FileStore,
}

impl Account {
    fn from_args(common: &Common) -> Result<Account, Failure> {
        let environment = common.environment()?;
        let username = common
            .username
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                Failure::credentials("no username").hint("set SIMACAN_USERNAME or pass --username")
            })?;
        let store = match &common.store_dir {
            Some(dir) => FileStore::new(dir),
            None => FileStore::default_location().map_err(|_| {
                Failure::new(
                    Code::Store,
                    "no per-user directory for the token store: HOME (or XDG_STATE_HOME on \
                     Linux, LOCALAPPDATA on Windows) is not set to an absolute path",
                )
                .hint("set it, or pass --store-dir DIR (or SIMACAN_AUTH_STORE_DIR)")
            })?,
        };
        Ok(Account {
            environment,
            username,
            store,
        })
    }

    fn key(&self) -> StoreKey {
        StoreKey::new(self.environment.base_url(), &self.username)
    }

    fn failure(&self, error: &Error) -> Failure {
        Failure::of(error, &self.environment, &self.username)
    }

    /// `production (https://…)`, `staging (…)` or the URL alone.
    fn describe(&self) -> String {
        let url = self.environment.base_url();
        match self.environment {
            Environment::Production => format!("production ({url})"),
            Environment::Staging => format!("staging ({url})"),
            _ => url.to_owned(),
        }
    }
}

/// Runs the command; `Ok` carries the exit code of a run that did its job
/// (`status` reports "not logged in" with one of its own).
pub(crate) async fn run(cli: Cli) -> Result<Code, Failure> {
    let account = || Account::from_args(&cli.common);
    match cli.command {
        Command::Token(args) => token(&account()?, args).await,
        Command::Login(args) => login(&account()?, args).await,
        Command::Logout => logout(&account()?).await,
        Command::Status(args) => status(&account()?, args).await,
        Command::Mock(args) => crate::mock::serve(args).await,
    }
}

async fn token(account: &Account, args: TokenArgs) -> Result<Code, Failure> {
    let (token, _) = obtain(account, &args.renewal, Password::from_args(&args.password)?).await?;
    let expires_in = token.expires_in();
    let output = match args.format {
        Format::Text => format!("{}\n", token.expose_secret()),
        Format::Json => {
            let json = serde_json::json!({
                "access_token": token.expose_secret(),
                "token_type": "Bearer",
                "expires_in": expires_in.as_secs(),
                "expires_at": rfc3339(SystemTime::now() + expires_in),
            });
            format!("{json}\n")
        }
    };
    print(&output, "the token")?;
    Ok(Code::Success)
}

/// Writes `output` to standard output; a closed or full output is a
/// failure of the run (exit 1), not a panic.
fn print(output: &str, what: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::new(Code::Other, format!("cannot write {what}: {e}")))
}

async fn login(account: &Account, args: LoginArgs) -> Result<Code, Failure> {
    let (token, how) = obtain(account, &args.renewal, Password::from_args(&args.password)?).await?;
    eprintln!(
        "{} at {}: {how}; the token is valid until {} ({} left)",
        account.username,
        account.describe(),
        rfc3339(SystemTime::now() + token.expires_in()),
        human(token.expires_in()),
    );
    Ok(Code::Success)
}

/// How a run came by its token, for `login` to say.
#[derive(Debug, Clone, Copy)]
enum How {
    Stored,
    Refreshed,
    LoggedIn,
}

impl std::fmt::Display for How {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            How::Stored => "already logged in",
            How::Refreshed => "renewed the token with the refresh token",
            How::LoggedIn => "logged in with the password",
        })
    }
}

/// A token valid for at least `renewal.min_validity` where the Auth API
/// allows it: the stored one, else one renewed with the refresh token, else
/// a password login. Without a known password it first tries without one,
/// and asks on the terminal only when a login turns out to be needed.
async fn obtain(
    account: &Account,
    renewal: &Renewal,
    password: Password,
) -> Result<(AccessToken, How), Failure> {
    let credentials = password.credentials(&account.username);
    let (token, how) = match obtain_with(account, renewal, credentials).await {
        Err(error) if error.kind() == ErrorKind::PasswordRequired && password.is_prompt() => {
            // From before the prompt turns echo off until the run ends.
            let mut interrupt = Interrupt::listen()?;
            let asked = password.prompt(&account.username, account.environment.base_url());
            let credentials = interrupt.guard(asked).await?;
            let login = async {
                obtain_with(account, renewal, credentials)
                    .await
                    .map_err(|error| account.failure(&error))
            };
            interrupt.guard(login).await?
        }
        obtained => obtained.map_err(|error| account.failure(&error))?,
    };
    if token.expires_in() < renewal.min_validity {
        eprintln!(
            "simacan-auth: warning: the token is valid for {} only, less than --min-validity {}: \
             the auth api issues no longer-lived tokens",
            human(token.expires_in()),
            human(renewal.min_validity),
        );
    }
    Ok((token, how))
}

async fn obtain_with(
    account: &Account,
    renewal: &Renewal,
    credentials: Credentials,
) -> Result<(AccessToken, How), Error> {
    let layer = SimacanAuthLayer::new(credentials)
        .environment(account.environment.clone())
        .token_store(account.store.clone())
        .auth_timeout(renewal.timeout)
        // No refresh in the background: this process may exit before it
        // lands, and a refresh lost after the Auth API rotated the refresh
        // token would cost a password login. Renewal happens below, awaited.
        .refresh_before_expiry(Duration::ZERO)
        // The token file is this machine's, read by this machine's clock:
        // a stored token's expiry is told as the Auth API gave it, the same
        // in every run and in `status`.
        .max_clock_skew(Duration::ZERO);
    let mut token = layer.access_token().await?;
    let stats = layer.stats();
    let fresh = stats.logins + stats.refreshes + stats.password_fallbacks > 0;
    if !fresh && (renewal.force_refresh || token.expires_in() < renewal.min_validity) {
        layer.invalidate();
        token = layer.access_token().await?;
    }
    let stats = layer.stats();
    let how = if stats.logins + stats.password_fallbacks > 0 {
        How::LoggedIn
    } else if stats.refreshes > 0 {
        How::Refreshed
    } else {
        How::Stored
    };
    Ok((token, how))
}

async fn logout(account: &Account) -> Result<Code, Failure> {
    let key = account.key();
    let path = account.store.token_path(&key);
    let stored = path.symlink_metadata().is_ok();
    account
        .store
        .remove(&key)
        .await
        .map_err(|e| account.failure(&e.into()))?;
    if stored {
        eprintln!(
            "logged out: deleted the stored tokens of {} at {}",
            account.username,
            account.describe()
        );
    } else {
        eprintln!(
            "not logged in: no stored tokens of {} at {}",
            account.username,
            account.describe()
        );
    }
    Ok(Code::Success)
}

async fn status(account: &Account, args: StatusArgs) -> Result<Code, Failure> {
    let key = account.key();
    // Only a look: nothing on disk changes.
    let record = account
        .store
        .peek(&key)
        .await
        .map_err(|e| account.failure(&e.into()))?;
    let now = SystemTime::now();
    let expires_at = record.as_ref().map(|r| r.expires_at());
    let left = expires_at.and_then(|at| at.duration_since(now).ok());
    let refresh_token = record.as_ref().is_some_and(|r| r.has_refresh_token());
    // Usable: the next `token` needs no password.
    let logged_in = left.is_some() || refresh_token;
    let token_file = account.store.token_path(&key);
    let output = match args.format {
        Format::Json => {
            let json = serde_json::json!({
                "environment": environment_name(&account.environment),
                "auth_url": account.environment.base_url(),
                "username": account.username,
                "logged_in": logged_in,
                "access_token_valid_until": expires_at.map(rfc3339),
                "access_token_valid": left.is_some(),
                "refresh_token_stored": refresh_token,
                "token_file": token_file.display().to_string(),
            });
            format!("{json}\n")
        }
        Format::Text => {
            let access = match (expires_at, left) {
                (None, _) => "none stored".to_owned(),
                (Some(at), Some(left)) => {
                    format!("valid until {} ({} left)", rfc3339(at), human(left))
                }
                (Some(at), None) => format!("expired at {}", rfc3339(at)),
            };
            let refresh = match (record.is_some(), refresh_token) {
                (_, true) => "stored (renews the access token without the password)",
                (true, false) => {
                    "none (refused by the auth api; the next token needs the password)"
                }
                (false, false) => "none",
            };
            format!(
                "environment:   {}\nuser:          {}\naccess token:  {access}\n\
                 refresh token: {refresh}\ntoken file:    {}\n",
                account.describe(),
                account.username,
                token_file.display()
            )
        }
    };
    print(&output, "the status")?;
    if logged_in {
        return Ok(Code::Success);
    }
    eprintln!(
        "simacan-auth: not logged in as {} at {}: the next token needs the password",
        account.username,
        account.describe()
    );
    Ok(Code::NotLoggedIn)
}

fn environment_name(environment: &Environment) -> &'static str {
    match environment {
        Environment::Production => "production",
        Environment::Staging => "staging",
        _ => "custom",
    }
}
