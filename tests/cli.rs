//! The `simacan-auth` binary (feature `cli`), run as a process against the
//! mock Auth API: what it prints, its exit codes, what it sends to the Auth
//! API across runs, and what it leaves on disk.
//!
//! Each test gives its runs a home directory of their own and nothing else
//! from the environment, so the token store is
//! `$HOME/.local/state/simacan-auth` unless a test says otherwise.
#![cfg(all(feature = "cli", unix))]

mod support;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::Duration,
};

use simacan_auth::{
    mock::{MockAuthApi, PASSWORD, Route, USERNAME},
    store::{FileStore, StoreKey},
};
use support::{bounded, mock};
use tempfile::TempDir;
use tokio::{io::AsyncWriteExt, process::Command};

const BIN: &str = env!("CARGO_BIN_EXE_simacan-auth");

/// Runs of the binary against one mock, sharing one home directory.
struct Runs {
    home: TempDir,
    auth_url: String,
}

/// What a run did.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Ran {
    fn from(output: Output) -> Self {
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

impl Runs {
    fn against(mock: &MockAuthApi) -> Runs {
        Self::at(&mock.base_url())
    }

    fn at(auth_url: &str) -> Runs {
        Runs {
            home: tempfile::tempdir().unwrap(),
            auth_url: auth_url.to_owned(),
        }
    }

    /// The binary with `args` and `--auth-url`, the mock's credentials in
    /// the environment, no terminal, and nothing else from the test's
    /// environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .args(["--auth-url", &self.auth_url])
            .env_clear()
            .env("HOME", self.home.path())
            .env("SIMACAN_USERNAME", USERNAME)
            .env("SIMACAN_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Ran {
        output(self.command(args)).await
    }

    /// A `token` run that must succeed; its token.
    async fn token(&self, args: &[&str]) -> String {
        let ran = self.run(&[&["token"], args].concat()).await;
        assert_eq!(ran.code, Some(0), "{ran:?}");
        let token = ran.stdout.strip_suffix('\n').expect("a newline").to_owned();
        assert!(
            !token.is_empty() && !token.contains(char::is_whitespace),
            "{ran:?}"
        );
        token
    }

    fn state_dir(&self) -> PathBuf {
        self.home.path().join(".local/state/simacan-auth")
    }

    fn token_file(&self) -> PathBuf {
        FileStore::new(self.state_dir()).token_path(&StoreKey::new(&self.auth_url, USERNAME))
    }
}

async fn output(mut command: Command) -> Ran {
    bounded(command.output()).await.unwrap().into()
}

fn accepted(mock: &MockAuthApi, token: &str) -> bool {
    mock.validator()
        .check(Some(format!("Bearer {token}").as_bytes()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file below `dir`, at any depth.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_below(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The files below `dir` whose bytes contain `secret`.
fn files_holding(dir: &Path, secret: &str) -> Vec<PathBuf> {
    files_below(dir)
        .into_iter()
        .filter(|file| {
            let bytes = std::fs::read(file).unwrap();
            bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes())
        })
        .collect()
}

/// The refresh token in a token file.
fn stored_refresh_token(file: &Path) -> String {
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    record["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn repeated_token_runs_log_in_once_and_print_the_token_alone() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let ran = runs.run(&["token"]).await;
        assert_eq!(ran.code, Some(0), "{ran:?}");
        assert_eq!(ran.stderr, "", "a quiet success");
        let token = ran.stdout.strip_suffix('\n').unwrap();
        assert_eq!(
            ran.stdout,
            format!("{token}\n"),
            "the token and one newline"
        );
        tokens.push(token.to_owned());
    }
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert!(
        accepted(&mock, &tokens[0]),
        "the mock accepts the printed token"
    );
    let counts = mock.counts();
    assert_eq!(counts.password, 1, "three runs, one login");
    assert_eq!(counts.refresh, 0);
}

#[tokio::test]
async fn json_output_has_the_token_and_its_expiry_but_never_the_refresh_token() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    let token = runs.token(&[]).await;
    let ran = runs.run(&["token", "--format", "json"]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(json["access_token"], token.as_str());
    assert_eq!(json["token_type"], "Bearer");
    let expires_in = json["expires_in"].as_u64().unwrap();
    assert!((3000..=3600).contains(&expires_in), "{json}");
    let expires_at = json["expires_at"].as_str().unwrap();
    assert!(
        expires_at.len() == 20 && expires_at.ends_with('Z'),
        "{json}"
    );
    let refresh_token = stored_refresh_token(&runs.token_file());
    assert!(!ran.stdout.contains(&refresh_token), "{json}");
    assert!(!ran.stdout.contains("refresh"), "{json}");
    // The stored token's expiry is the one its login gave, in every run.
    let first = runs
        .run(&["token", "--format", "json", "--force-refresh"])
        .await;
    let first: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    let again = runs.run(&["token", "--format", "json"]).await;
    let again: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(first["access_token"], again["access_token"]);
    let seconds = |v: &serde_json::Value| v["expires_in"].as_u64().unwrap();
    assert!(
        seconds(&first) - seconds(&again) <= 1,
        "{first} then {again}"
    );
    assert_eq!(mock.counts().password, 1);
}

#[tokio::test]
async fn logout_then_token_logs_in_again() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    let first = runs.token(&[]).await;
    assert!(runs.token_file().exists());

    let ran = runs.run(&["logout"]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(ran.stderr.contains("logged out"), "{ran:?}");
    assert_eq!(ran.stdout, "");
    assert!(!runs.token_file().exists(), "the token file is deleted");

    let again = runs.run(&["logout"]).await;
    assert_eq!(again.code, Some(0), "logging out twice is fine: {again:?}");
    assert!(again.stderr.contains("not logged in"), "{again:?}");

    let second = runs.token(&[]).await;
    assert_ne!(first, second);
    assert_eq!(
        mock.counts().password,
        2,
        "logged in again after the logout"
    );
}

#[tokio::test]
async fn force_refresh_renews_with_the_refresh_token_not_the_password() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    let first = runs.token(&[]).await;
    let renewed = runs.token(&["--force-refresh"]).await;
    assert_ne!(first, renewed);
    assert!(accepted(&mock, &renewed));
    let counts = mock.counts();
    assert_eq!((counts.password, counts.refresh), (1, 1));
    // The renewed token is the stored one now.
    assert_eq!(runs.token(&[]).await, renewed);
    assert_eq!(mock.counts().refresh, 1);
}

#[tokio::test]
async fn min_validity_longer_than_what_is_left_renews_first() {
    let mock = mock().await;
    mock.set_token_lifetime(Duration::from_secs(60));
    let runs = Runs::against(&mock);
    let first = runs.token(&[]).await;
    assert_eq!(
        runs.token(&["--min-validity", "30s"]).await,
        first,
        "enough is left"
    );
    assert_eq!(mock.counts().refresh, 0);

    let ran = runs.run(&["token", "--min-validity", "5m"]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_ne!(ran.stdout, format!("{first}\n"), "a renewed token");
    assert!(
        ran.stderr.contains("less than --min-validity 5m"),
        "the mock's tokens live a minute: {ran:?}"
    );
    let counts = mock.counts();
    assert_eq!((counts.password, counts.refresh), (1, 1));
}

#[tokio::test]
async fn each_run_with_a_wrong_password_sends_it_once_and_exits_3() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    for run in 1..=2 {
        let mut command = runs.command(&["token"]);
        command.env("SIMACAN_PASSWORD", "not the password");
        let ran = output(command).await;
        assert_eq!(ran.code, Some(3), "{ran:?}");
        assert_eq!(ran.stdout, "", "no token on stdout");
        assert!(
            ran.stderr
                .contains(&format!("rejected the username or password of {USERNAME}"))
                && ran.stderr.contains(&runs.auth_url),
            "{ran:?}"
        );
        assert!(!ran.stderr.contains("not the password"), "{ran:?}");
        // The backoff is per process: every run tries once.
        assert_eq!(mock.counts().password, run);
    }
    assert!(!runs.token_file().exists());
}

#[tokio::test]
async fn an_unreachable_auth_api_exits_4_saying_when_to_retry() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The listener is closed: connections to the port are refused.
    let runs = Runs::at(&format!("http://127.0.0.1:{port}/api/v1"));
    let ran = runs.run(&["token"]).await;
    assert_eq!(ran.code, Some(4), "{ran:?}");
    assert_eq!(ran.stdout, "");
    assert!(
        ran.stderr.contains(&format!(
            "unreachable at http://127.0.0.1:{port}/api/v1/auth/password"
        )),
        "{ran:?}"
    );
    assert!(ran.stderr.contains("refused"), "the cause: {ran:?}");
    assert!(ran.stderr.contains("try again in 1s"), "{ran:?}");
    // The library's in-process backoff means nothing to a run that ends.
    assert!(!ran.stderr.contains("next attempt"), "{ran:?}");
}

#[tokio::test]
async fn a_corrupt_token_file_is_moved_aside_with_a_warning_and_replaced() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    runs.token(&[]).await;
    let file = runs.token_file();
    std::fs::write(&file, "not a token record").unwrap();
    let ran = runs.run(&["token"]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(
        ran.stderr
            .starts_with("simacan-auth: warning: moved aside a token file")
            && ran.stderr.contains(&file.display().to_string()),
        "{ran:?}"
    );
    assert_eq!(mock.counts().password, 2, "one login to replace it");
    let aside = files_below(&runs.state_dir())
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(".corrupt-"))
        .count();
    assert_eq!(aside, 1);
    assert!(!stored_refresh_token(&file).is_empty(), "a good file again");
    let quiet = runs.run(&["token"]).await;
    assert_eq!((quiet.code, quiet.stderr.as_str()), (Some(0), ""));
}

/// `logout` leaves nothing of the user's behind, not even a corrupt file
/// moved aside (it may still hold tokens); other users' files stay.
#[tokio::test]
async fn logout_deletes_every_file_of_the_user() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    // Another user in the same store directory.
    let mut other_user = runs.command(&["token", "--username", "someone-else"]);
    other_user.env("HOME", runs.home.path());
    let _ = output(other_user).await;
    let others_files = files_below(&runs.state_dir()).len();

    runs.token(&[]).await;
    let file = runs.token_file();
    let refresh = stored_refresh_token(&file);
    std::fs::write(&file, format!("{{\"refresh_token\":\"{refresh}\",")).unwrap();
    let ran = runs.run(&["token"]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(
        files_holding(&runs.state_dir(), &refresh).len(),
        1,
        "moved aside"
    );

    let ran = runs.run(&["logout"]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let left = files_below(&runs.state_dir());
    assert!(
        files_holding(&runs.state_dir(), &refresh).is_empty(),
        "{left:?}"
    );
    assert_eq!(
        left.len(),
        others_files,
        "only the other user's files stay: {left:?}"
    );
}

/// `status` only reads: it creates no directory and moves no file.
#[tokio::test]
async fn status_changes_nothing_on_disk() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    let ran = runs.run(&["status"]).await;
    assert_eq!(ran.code, Some(6), "{ran:?}");
    assert!(
        !runs.state_dir().exists(),
        "status created the store directory"
    );

    runs.token(&[]).await;
    let file = runs.token_file();
    std::fs::write(&file, "not a token record").unwrap();
    let before = files_below(&runs.state_dir());
    let ran = runs.run(&["status"]).await;
    assert_eq!(ran.code, Some(6), "{ran:?}");
    assert_eq!(
        files_below(&runs.state_dir()),
        before,
        "status moved a file"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"not a token record");
}

#[tokio::test]
async fn output_that_cannot_be_written_fails_the_run_without_a_panic() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    runs.token(&[]).await;
    for command in ["token", "status"] {
        let mut full = runs.command(&[command]);
        full.stdout(std::fs::File::create("/dev/full").unwrap())
            .stderr(Stdio::piped());
        let child = full.spawn().unwrap();
        let ran = Ran::from(bounded(child.wait_with_output()).await.unwrap());
        assert_eq!(ran.code, Some(1), "{command}: {ran:?}");
        assert!(
            ran.stderr.starts_with("simacan-auth: error: cannot write")
                && !ran.stderr.contains("panicked"),
            "{command}: {ran:?}"
        );
    }
}

#[tokio::test]
async fn a_token_file_others_can_read_exits_5_naming_the_file_and_the_fix() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    runs.token(&[]).await;
    let file = runs.token_file();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ran = runs.run(&["token"]).await;
    assert_eq!(ran.code, Some(5), "{ran:?}");
    assert_eq!(ran.stdout, "");
    assert!(
        ran.stderr.contains(&file.display().to_string())
            && ran
                .stderr
                .contains(&format!("chmod 600 {}", file.display())),
        "{ran:?}"
    );
    assert_eq!(runs.run(&["status"]).await.code, Some(5));
    assert_eq!(mock.counts().password, 1, "no login over an insecure file");
}

#[tokio::test]
async fn concurrent_runs_wait_for_each_other_and_log_in_once() {
    let mock = mock().await;
    // Long enough a login that every run starts while it is in flight.
    mock.set_delay(Route::Password, Duration::from_millis(500));
    let runs = Runs::against(&mock);
    let children: Vec<_> = (0..6)
        .map(|_| tokio::spawn(output(runs.command(&["token"]))))
        .collect();
    let mut tokens = Vec::new();
    for child in children {
        let ran = bounded(child).await.unwrap();
        assert_eq!(ran.code, Some(0), "{ran:?}");
        tokens.push(ran.stdout);
    }
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    let counts = mock.counts();
    assert_eq!(counts.password, 1, "six runs at once, one login");
    assert_eq!(counts.refresh, 0);
}

#[tokio::test]
async fn help_lists_the_subcommands_environments_and_exit_codes() {
    let ran = output({
        let mut command = Command::new(BIN);
        command.arg("--help").env_clear();
        command
    })
    .await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let help = ran.stdout;
    for needed in [
        "token",
        "login",
        "logout",
        "status",
        "--production",
        "--staging",
        "--auth-url <URL>",
        "--username",
        "--store-dir",
        "SIMACAN_USERNAME",
        "SIMACAN_PASSWORD",
        "Exit codes:",
        "0  success",
        "2  bad arguments",
        "3  credentials rejected",
        "4  Auth API unreachable",
        "5  token store problem",
        "6  not logged in",
    ] {
        assert!(help.contains(needed), "--help lacks {needed:?}:\n{help}");
    }
    let runs = Runs::at("http://127.0.0.1:9/api/v1");
    let token_help = runs.run(&["token", "--help"]).await;
    for needed in [
        "--min-validity",
        "--force-refresh",
        "--format",
        "--password-file",
        "--staging",
    ] {
        assert!(
            token_help.stdout.contains(needed),
            "token --help lacks {needed:?}"
        );
    }
    let help_token = output({
        let mut command = Command::new(BIN);
        command.args(["help", "token"]).env_clear();
        command
    })
    .await;
    assert_eq!(help_token.code, Some(0), "{help_token:?}");
    assert!(
        help_token.stdout.contains("--min-validity"),
        "{help_token:?}"
    );
}

#[tokio::test]
async fn the_password_is_never_a_flag() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    for args in [
        &["token", "--password", PASSWORD][..],
        &["token", &format!("--password={PASSWORD}")],
        &["login", "-p", PASSWORD],
    ] {
        let ran = runs.run(args).await;
        assert_eq!(ran.code, Some(2), "{ran:?}");
        assert!(
            ran.stderr.contains("never taken on the command line"),
            "{ran:?}"
        );
        assert!(
            !ran.stderr.contains(PASSWORD),
            "the password was repeated: {ran:?}"
        );
        assert_eq!(ran.stdout, "");
    }
    assert_eq!(mock.counts().password, 0);
}

/// A password given as the value of a flag, or as a stray word after one,
/// is refused without being repeated: clap's own errors would echo it.
#[tokio::test]
async fn a_value_that_may_be_the_password_is_never_repeated() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    let secret = "hunter2-secret";
    for args in [
        &["token", &format!("--password-stdin={secret}")][..],
        &[&format!("--password-stdin={secret}"), "login"],
        &["login", "--password-stdin", secret],
        &["token", secret],
        &["token", "--password-stdin", "--password-stdin", secret],
    ] {
        let ran = runs.run(args).await;
        assert_eq!(ran.code, Some(2), "{args:?}: {ran:?}");
        assert!(
            !ran.stderr.contains(secret) && !ran.stderr.contains("hunter2"),
            "a value was repeated: {ran:?}"
        );
        assert!(
            ran.stderr.starts_with("error:") || ran.stderr.contains("simacan-auth:"),
            "{ran:?}"
        );
        assert_eq!(ran.stdout, "");
    }
    assert_eq!(mock.counts().password, 0);
    // Values that are no secret are still shown, to help.
    let ran = runs.run(&["token", "--min-validity", "soon"]).await;
    assert_eq!(ran.code, Some(2));
    assert!(ran.stderr.contains("soon"), "{ran:?}");
}

#[tokio::test]
async fn tokens_are_private_and_no_file_holds_the_password() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    let first = runs.token(&[]).await;
    assert_eq!(runs.run(&["login", "--force-refresh"]).await.code, Some(0));
    let token = runs.token(&[]).await;
    assert_ne!(token, first, "renewed by the login");
    assert_eq!(runs.run(&["status"]).await.code, Some(0));

    let file = runs.token_file();
    assert_eq!(mode(&file), 0o600, "the token file");
    assert_eq!(mode(&runs.state_dir()), 0o700, "the token directory");

    let home = runs.home.path();
    assert!(!files_below(home).is_empty());
    assert_eq!(
        files_holding(home, PASSWORD),
        Vec::<PathBuf>::new(),
        "the password on disk"
    );
    // Tokens only in the token store's own file.
    assert_eq!(files_holding(home, &token), vec![file.clone()]);
    assert_eq!(
        files_holding(home, &stored_refresh_token(&file)),
        vec![file]
    );
}

#[tokio::test]
async fn status_shows_who_and_until_when_but_never_a_token() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    let before = runs.run(&["status"]).await;
    assert_eq!(before.code, Some(6), "{before:?}");
    assert!(before.stderr.contains("not logged in"), "{before:?}");
    let json = runs.run(&["status", "--format", "json"]).await;
    assert_eq!(json.code, Some(6), "{json:?}");
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["logged_in"], false);

    let token = runs.token(&[]).await;
    let refresh_token = stored_refresh_token(&runs.token_file());
    let ran = runs.run(&["status"]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    for needed in [
        &runs.auth_url,
        USERNAME,
        "access token:  valid until 20",
        "Z (59m",
        "refresh token: stored",
        &runs.token_file().display().to_string(),
    ] {
        assert!(
            ran.stdout.contains(needed),
            "status lacks {needed:?}:\n{}",
            ran.stdout
        );
    }
    let json = runs.run(&["status", "--format", "json"]).await;
    assert_eq!(json.code, Some(0), "{json:?}");
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(parsed["logged_in"], true);
    assert_eq!(parsed["refresh_token_stored"], true);
    assert_eq!(parsed["username"], USERNAME);
    for shown in [&ran, &json] {
        let all = format!("{}{}", shown.stdout, shown.stderr);
        assert!(
            !all.contains(&token) && !all.contains(&refresh_token),
            "{all}"
        );
    }
    assert_eq!(mock.counts().password, 1, "status calls no auth api");
}

#[tokio::test]
async fn without_a_password_the_stored_token_is_used_and_a_login_is_refused() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    assert_eq!(runs.run(&["login"]).await.code, Some(0));

    let without = |args: &[&str]| {
        let mut command = runs.command(args);
        command.env_remove("SIMACAN_PASSWORD");
        output(command)
    };
    let ran = without(&["token"]).await;
    assert_eq!(
        ran.code,
        Some(0),
        "the stored token needs no password: {ran:?}"
    );
    let mut command = runs.command(&["token", "--force-refresh"]);
    command.env("SIMACAN_PASSWORD", "");
    let ran = output(command).await;
    assert_eq!(
        ran.code,
        Some(0),
        "nor does a refresh, and an empty SIMACAN_PASSWORD counts as none: {ran:?}"
    );
    assert_eq!(mock.counts().refresh, 1);

    assert_eq!(runs.run(&["logout"]).await.code, Some(0));
    let ran = without(&["token"]).await;
    assert_eq!(ran.code, Some(3), "{ran:?}");
    assert_eq!(ran.stdout, "");
    assert!(
        ran.stderr.contains("a password is needed") && ran.stderr.contains("SIMACAN_PASSWORD"),
        "{ran:?}"
    );
    assert_eq!(
        mock.counts().password,
        1,
        "no login was tried without a password"
    );
}

#[tokio::test]
async fn the_password_comes_from_a_file_or_standard_input() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    let elsewhere = tempfile::tempdir().unwrap();
    let password_file = elsewhere.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();

    let mut command = runs.command(&["token", "--password-file", password_file.to_str().unwrap()]);
    command.env_remove("SIMACAN_PASSWORD");
    let ran = output(command).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(mock.counts().password, 1);

    assert_eq!(runs.run(&["logout"]).await.code, Some(0));
    let mut command = runs.command(&["login", "--password-stdin"]);
    command
        .env_remove("SIMACAN_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    bounded(stdin.write_all(format!("{PASSWORD}\n").as_bytes()))
        .await
        .unwrap();
    drop(stdin);
    let ran = Ran::from(bounded(child.wait_with_output()).await.unwrap());
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(
        ran.stderr.contains("logged in with the password"),
        "{ran:?}"
    );
    assert_eq!(ran.stdout, "", "login prints nothing on stdout");
    assert_eq!(mock.counts().password, 2);

    // A file given wins over the environment, and a wrong one is refused.
    std::fs::write(&password_file, "wrong\n").unwrap();
    assert_eq!(runs.run(&["logout"]).await.code, Some(0));
    let ran = runs
        .run(&["token", "--password-file", password_file.to_str().unwrap()])
        .await;
    assert_eq!(ran.code, Some(3), "{ran:?}");
}

#[tokio::test]
async fn tokens_are_kept_in_the_xdg_state_directory_or_the_store_dir() {
    let mock = mock().await;
    let runs = Runs::against(&mock);
    let key = StoreKey::new(mock.base_url(), USERNAME);
    let xdg = runs.home.path().join("xdg-state");
    let mut command = runs.command(&["token"]);
    command.env("XDG_STATE_HOME", &xdg);
    assert_eq!(output(command).await.code, Some(0));
    assert!(
        FileStore::new(xdg.join("simacan-auth"))
            .token_path(&key)
            .exists()
    );

    let chosen = runs.home.path().join("chosen");
    let ran = runs
        .run(&["token", "--store-dir", chosen.to_str().unwrap()])
        .await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(FileStore::new(&chosen).token_path(&key).exists());
    let mut command = runs.command(&["status"]);
    command.env("SIMACAN_AUTH_STORE_DIR", &chosen);
    assert_eq!(
        output(command).await.code,
        Some(0),
        "the variable names it too"
    );

    assert!(!runs.token_file().exists(), "nothing in the default place");
    let mut command = runs.command(&["token"]);
    command.env_remove("HOME");
    let ran = output(command).await;
    assert_eq!(ran.code, Some(5), "no home, no store: {ran:?}");
    assert!(ran.stderr.contains("--store-dir"), "{ran:?}");
}

#[tokio::test]
async fn bad_arguments_exit_2_and_a_missing_username_3() {
    let runs = Runs::at("http://127.0.0.1:9/api/v1");
    let with = |args: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_clear()
            .env("HOME", runs.home.path())
            .env("SIMACAN_USERNAME", USERNAME)
            .stdin(Stdio::null());
        output(command)
    };
    let ran = with(&["token", "--auth-url", "https://auth.example.com"]).await;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(
        ran.stderr
            .contains("did you mean \"https://auth.example.com/api/v1\""),
        "{ran:?}"
    );
    for args in [
        &["token", "--auth-url", "http://auth.example.com/api/v1"][..],
        &["token", "--staging", "--production"],
        &["token", "--min-validity", "soon"],
        &["token", "--format", "yaml"],
        &["frobnicate"],
        &[],
    ] {
        let ran = with(args).await;
        assert_eq!(ran.code, Some(2), "{args:?}: {ran:?}");
        assert_eq!(ran.stdout, "");
    }
    let mut command = runs.command(&["status"]);
    command.env_remove("SIMACAN_USERNAME");
    let ran = output(command).await;
    assert_eq!(ran.code, Some(3), "{ran:?}");
    assert!(ran.stderr.contains("--username"), "{ran:?}");
}

/// A `login` that needs the password, run on a pseudo-terminal of its own
/// (its controlling terminal, through util-linux `setsid --ctty`) and
/// showing the prompt, with echo off.
#[cfg(target_os = "linux")]
struct Prompting {
    child: tokio::process::Child,
    master: std::fs::File,
    /// Kept open, so that the terminal and its settings outlive the run.
    slave: std::fs::File,
    _runs: Runs,
}

#[cfg(target_os = "linux")]
impl Prompting {
    async fn start(mock: &MockAuthApi) -> Prompting {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};

        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap();
        let master = std::fs::File::from(master);
        assert!(echo(&slave), "a new terminal echoes");

        let runs = Runs::against(mock);
        let mut command = Command::new("setsid");
        command
            .args(["--ctty", BIN, "login", "--auth-url", &runs.auth_url])
            .env_clear()
            .env("HOME", runs.home.path())
            .env("SIMACAN_USERNAME", USERNAME)
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave.try_clone().unwrap())
            .kill_on_drop(true);
        let child = command.spawn().expect("util-linux setsid is installed");

        // Read on a thread of its own: reads of the master block.
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let into = seen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0; 1024];
            while let Ok(n @ 1..) = std::io::Read::read(&mut reader, &mut buffer) {
                into.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        });
        bounded(async {
            while !String::from_utf8_lossy(&seen.lock().unwrap()).contains("password for ") {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        // The prompt is shown before echo goes off.
        bounded(async {
            while echo(&slave) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        Prompting {
            child,
            master,
            slave,
            _runs: runs,
        }
    }

    /// How the run ended, and whether the terminal echoes again.
    async fn ended(mut self) -> (std::process::ExitStatus, bool) {
        let status = bounded(self.child.wait()).await.unwrap();
        (status, echo(&self.slave))
    }
}

#[cfg(target_os = "linux")]
fn echo(tty: &std::fs::File) -> bool {
    rustix::termios::tcgetattr(tty)
        .unwrap()
        .local_modes
        .contains(rustix::termios::LocalModes::ECHO)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn ctrl_c_at_the_password_prompt_gives_the_terminal_its_echo_back_and_exits_130() {
    let mock = mock().await;
    let mut prompting = Prompting::start(&mock).await;
    // Ctrl-C, as a keyboard sends it.
    std::io::Write::write_all(&mut prompting.master, b"\x03").unwrap();
    let (status, echo) = prompting.ended().await;
    assert!(echo, "the terminal echoes again after {status:?}");
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert_eq!(mock.counts().password, 0, "no login");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn sigterm_at_the_password_prompt_gives_the_terminal_its_echo_back_and_exits_143() {
    use rustix::process::{Pid, Signal, kill_process};

    let mock = mock().await;
    let prompting = Prompting::start(&mock).await;
    let pid = Pid::from_raw(prompting.child.id().unwrap().try_into().unwrap()).unwrap();
    kill_process(pid, Signal::TERM).unwrap();
    let (status, echo) = prompting.ended().await;
    assert!(echo, "the terminal echoes again after {status:?}");
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert_eq!(mock.counts().password, 0, "no login");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_password_typed_at_the_prompt_logs_in_and_echo_comes_back() {
    let mock = mock().await;
    let mut prompting = Prompting::start(&mock).await;
    std::io::Write::write_all(&mut prompting.master, format!("{PASSWORD}\r").as_bytes()).unwrap();
    let (status, echo) = prompting.ended().await;
    assert!(echo, "the terminal echoes again after {status:?}");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(mock.counts().password, 1);
}
