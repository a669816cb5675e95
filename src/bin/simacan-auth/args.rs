//! The command line: subcommands, flags, and the help text with the exit
//! codes. The password is never a flag.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use simacan_auth::Environment;

use crate::{exit::Failure, time::parse_duration};

const ABOUT: &str = "Simacan API access tokens for people and scripts.";

const LONG_ABOUT: &str = "\
Simacan API access tokens for people and scripts.

Logs in to the Simacan Auth API once and keeps the tokens in a private file,
so that later runs reuse the access token, or renew it with the refresh
token, without sending the password again.

  curl -H \"Authorization: Bearer $(simacan-auth token --staging)\" \\
    https://example-stg.services.simacan.com/api/trips";

const AFTER_HELP: &str = "\
Credentials:
  The username comes from --username or SIMACAN_USERNAME. The password is
  never taken on the command line: it comes from --password-file,
  --password-stdin or SIMACAN_PASSWORD, or else from a prompt (without echo)
  when standard input is a terminal, and only when a login is needed.

Tokens are kept in $XDG_STATE_HOME/simacan-auth (default
~/.local/state/simacan-auth) on Linux, ~/Library/Application
Support/simacan-auth on macOS, %LOCALAPPDATA%\\simacan-auth on Windows, or in
--store-dir: a directory of mode 0700 with one 0600 file per environment and
user. The password is never written anywhere.

Exit codes:
  0  success
  1  any other failure (such as a malformed answer from the Auth API)
  2  bad arguments
  3  credentials rejected by the Auth API, or missing
  4  Auth API unreachable, timing out, or answering 5xx or 429, or another
     run held the token store's lock too long: try again later
  5  token store problem (such as a token file others can read)
  6  not logged in (status)
  130  Ctrl-C at the password prompt, or during the login after it (143
       for SIGTERM); the terminal's settings are put back first";

/// The end of `token --help` and `login --help`.
const PASSWORD_HELP: &str = "\
The password comes from --password-file, --password-stdin or
SIMACAN_PASSWORD, or else from a prompt (without echo) when standard input
is a terminal, and is used only when a login is needed; never from the
command line.

Exit codes: 0 success, 2 bad arguments, 3 credentials rejected or missing,
4 Auth API unavailable (try again later), 5 token store problem, 1 anything
else; see simacan-auth --help.";

/// `simacan-auth`: see `--help`.
#[derive(Debug, Parser)]
#[command(
    name = "simacan-auth",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) common: Common,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The flags every subcommand takes, before or after its name.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// Simacan's production Auth API (the default)
    #[arg(long, global = true, help_heading = "Environment")]
    production: bool,

    /// Simacan's staging Auth API
    #[arg(long, global = true, help_heading = "Environment")]
    staging: bool,

    // The help is an attribute rather than a doc comment: rustdoc would
    // want the example URL in angle brackets, which the help would show.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        help_heading = "Environment",
        value_parser = parse_auth_url,
        help = "Another Auth API: everything up to and including the version, such as \
                https://auth.example.com/api/v1 (https, or plain http to a loopback address only)"
    )]
    auth_url: Option<Environment>,

    /// The username Simacan support handed out
    #[arg(
        long,
        global = true,
        env = "SIMACAN_USERNAME",
        hide_env_values = true,
        help_heading = "Account"
    )]
    pub(crate) username: Option<String>,

    /// The directory the tokens are kept in, instead of the per-user state
    /// directory
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "SIMACAN_AUTH_STORE_DIR",
        hide_env_values = true,
        help_heading = "Account"
    )]
    pub(crate) store_dir: Option<PathBuf>,
}

impl Common {
    /// The environment the flags name; production by default.
    ///
    /// # Errors
    ///
    /// A usage failure when more than one is named. Checked here rather
    /// than by clap, whose conflicts miss a global flag given before the
    /// subcommand and another after it.
    pub(crate) fn environment(&self) -> Result<Environment, Failure> {
        let named = [self.production, self.staging, self.auth_url.is_some()];
        if named.into_iter().filter(|&named| named).count() > 1 {
            return Err(Failure::usage(
                "--production, --staging and --auth-url exclude each other",
            ));
        }
        Ok(match (&self.auth_url, self.staging) {
            (Some(custom), _) => custom.clone(),
            (None, true) => Environment::Staging,
            (None, false) => Environment::Production,
        })
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print a valid access token, and nothing else, on standard output
    ///
    /// Uses the stored token while it is valid for --min-validity, renews
    /// it with the refresh token otherwise, and logs in with the password
    /// only when neither works.
    #[command(after_help = PASSWORD_HELP)]
    Token(TokenArgs),
    /// Log in, or make sure the stored token is valid; prints nothing on
    /// standard output
    ///
    /// Uses the stored token, or renews it with the refresh token, when it
    /// can; logs in with the password otherwise.
    #[command(after_help = PASSWORD_HELP)]
    Login(LoginArgs),
    /// Forget the stored tokens of the user in the environment
    ///
    /// The tokens are deleted from this machine; the Auth API is not told.
    Logout,
    /// Show the environment, the user and until when the stored token is
    /// valid (never a token)
    ///
    /// Exits with 6 when there is no usable stored token (the next `token`
    /// would need the password).
    Status(StatusArgs),
    /// Run the mock Simacan Auth API and a target API on loopback until
    /// Ctrl-C or SIGTERM
    ///
    /// Prints the URLs of the Auth API, the target API and the control API,
    /// and the credentials the mock accepts. The control API (under /_mock)
    /// reads and resets the counts, revokes tokens and scripts failures;
    /// its endpoints are listed in the rustdoc of simacan_auth::mock. Takes
    /// no environment or account flags.
    Mock(MockArgs),
}

#[derive(Debug, Args)]
pub(crate) struct MockArgs {
    /// The loopback address and port to listen on; port 0 picks a free one
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub(crate) listen: std::net::SocketAddr,
    /// text for people, json for scripts: one line with addr, auth_url,
    /// target_url, control_url, username and password
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    pub(crate) renewal: Renewal,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
    /// text: the token and a newline; json: the token, its type and expiry
    /// (never the refresh token)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    #[command(flatten)]
    pub(crate) renewal: Renewal,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// text for people, json for scripts
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

/// When to renew a token that is still valid, and how long to wait for the
/// Auth API.
#[derive(Debug, Args)]
pub(crate) struct Renewal {
    /// Renew the token first when less than this is left of it (30s, 5m,
    /// 1h)
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub(crate) min_validity: Duration,

    /// Renew the token with the refresh token even if it is still valid
    #[arg(long)]
    pub(crate) force_refresh: bool,

    /// How long to wait for each answer of the Auth API
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub(crate) timeout: Duration,
}

/// Where the password comes from, besides `SIMACAN_PASSWORD` and the
/// prompt.
#[derive(Debug, Args)]
pub(crate) struct PasswordArgs {
    /// Read the password from this file (one trailing newline is ignored)
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "password_stdin",
        help_heading = "Password"
    )]
    pub(crate) password_file: Option<PathBuf>,

    /// Read the password from standard input (one trailing newline is
    /// ignored)
    #[arg(long, help_heading = "Password")]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

fn parse_auth_url(url: &str) -> Result<Environment, String> {
    Environment::custom(url).map_err(|error| {
        // The library's reason ends with advice for its API, which a
        // command line has no use for.
        let message = error.to_string();
        let reason = message
            .strip_prefix("invalid configuration: ")
            .unwrap_or(&message);
        reason
            .replace(" (Environment::custom_unversioned takes it as it is)", "")
            .replace("base url", "auth url")
    })
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err("the timeout must be longer than zero".into()),
        timeout => Ok(timeout),
    }
}

/// Refuses a password given as a flag before clap sees it, so that the
/// error does not repeat it: a password on the command line shows in the
/// process list and the shell's history.
pub(crate) fn refuse_password_flag(args: impl IntoIterator<Item = OsString>) -> Option<Failure> {
    args.into_iter()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| {
            let arg = arg.to_string_lossy();
            arg == "--password" || arg.starts_with("--password=") || arg == "-p"
        })
        .then(|| {
            Failure::usage(
                "the password is never taken on the command line, where the process list \
                 and the shell history would show it",
            )
            .hint(
                "set SIMACAN_PASSWORD, use --password-file PATH or --password-stdin, \
                 or answer the prompt on a terminal",
            )
        })
}

/// Clap's error, or, where clap would repeat a value that may be a
/// password, a usage failure that does not: a value given to
/// `--password-stdin` or `--password-file` where none belongs, and a stray
/// word (such as a password typed after `--password-stdin`). Flags and the
/// values of other options (URLs, durations, formats) are no secret, and
/// clap's message for them is kept.
pub(crate) fn without_secrets(error: clap::Error) -> Result<clap::Error, Failure> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let invalid = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.as_str(),
        _ => "",
    };
    let flag = invalid.split([' ', '=']).next().unwrap_or_default();
    let password_flag = matches!(flag, "--password-stdin" | "--password-file");
    let repeats_a_value = error.get(ContextKind::InvalidValue).is_some();
    if password_flag && repeats_a_value {
        return Err(Failure::usage(format!(
            "{flag} was given a value, which is not repeated here in case it is the password"
        ))
        .hint(
            "--password-stdin reads the password from standard input and takes no value; \
             --password-file takes the path of a file holding it",
        ));
    }
    let stray_word = matches!(
        error.kind(),
        ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand
    ) && !invalid.is_empty()
        && !invalid.starts_with('-');
    if stray_word {
        return Err(Failure::usage(
            "unexpected argument, not repeated here in case it is the password",
        )
        .hint(
            "the password is never taken on the command line: set SIMACAN_PASSWORD, \
             use --password-file PATH or --password-stdin, or answer the prompt on a terminal; \
             see simacan-auth --help",
        ));
    }
    Ok(error)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("simacan-auth").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn environment_flags_go_before_or_after_the_subcommand() {
        let env = |args: &[&str]| parse(args).unwrap().common.environment().unwrap();
        assert_eq!(env(&["token"]), Environment::Production);
        assert_eq!(env(&["token", "--staging"]), Environment::Staging);
        assert_eq!(env(&["--staging", "status"]), Environment::Staging);
        assert_eq!(env(&["logout", "--production"]), Environment::Production);
        let custom = env(&["login", "--auth-url", "http://127.0.0.1:9/api/v1"]);
        assert_eq!(custom.base_url(), "http://127.0.0.1:9/api/v1");
    }

    #[test]
    fn at_most_one_environment() {
        for args in [
            &["token", "--staging", "--production"][..],
            &[
                "token",
                "--staging",
                "--auth-url",
                "https://a.example.com/api/v1",
            ],
            &[
                "--production",
                "status",
                "--auth-url",
                "https://a.example.com/api/v1",
            ],
        ] {
            let failure = parse(args).unwrap().common.environment().unwrap_err();
            assert_eq!(failure.code, crate::exit::Code::Usage, "{args:?}");
        }
    }

    #[test]
    fn auth_urls_follow_the_library_rules_with_advice_for_the_command_line() {
        let error = parse(&["token", "--auth-url", "https://auth.example.com"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("did you mean \"https://auth.example.com/api/v1\""),
            "{error}"
        );
        assert!(!error.contains("Environment::"), "{error}");
        assert!(parse(&["token", "--auth-url", "http://auth.example.com/api/v1"]).is_err());
    }

    #[test]
    fn durations_and_formats() {
        let Command::Token(token) = parse(&["token", "--min-validity", "5m", "--format", "json"])
            .unwrap()
            .command
        else {
            panic!("not the token command");
        };
        assert_eq!(token.renewal.min_validity, Duration::from_secs(300));
        assert_eq!(token.renewal.timeout, Duration::from_secs(30));
        assert_eq!(token.format, Format::Json);
        assert!(parse(&["token", "--min-validity", "soon"]).is_err());
        assert!(parse(&["login", "--timeout", "0s"]).is_err());
    }

    #[test]
    fn a_password_flag_is_refused_without_being_repeated() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        for given in [
            &["simacan-auth", "token", "--password", "hunter2"][..],
            &["simacan-auth", "--password=hunter2", "login"],
            &["simacan-auth", "login", "-p", "hunter2"],
        ] {
            let failure = refuse_password_flag(args(given)).expect("refused");
            assert!(!failure.to_string().contains("hunter2"));
        }
        assert!(
            refuse_password_flag(args(&["simacan-auth", "token", "--password-stdin"])).is_none()
        );
        assert!(
            parse(&["token", "--password", "hunter2"]).is_err(),
            "clap has no such flag"
        );
    }

    #[test]
    fn values_that_may_be_the_password_are_not_repeated() {
        for given in [
            &["token", "--password-stdin=hunter2"][..],
            &["login", "--password-stdin", "hunter2"],
            &["token", "hunter2"],
        ] {
            let error = parse(given).unwrap_err();
            let failure = without_secrets(error).expect_err("refused without clap's message");
            assert_eq!(failure.code, crate::exit::Code::Usage);
            assert!(!failure.to_string().contains("hunter2"), "{failure}");
        }
        let kept = without_secrets(parse(&["token", "--format", "yaml"]).unwrap_err())
            .expect("no secret in it");
        assert!(kept.to_string().contains("yaml"), "{kept}");
    }
}
