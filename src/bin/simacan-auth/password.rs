//! Where the password comes from: `--password-file`, `--password-stdin`,
//! `SIMACAN_PASSWORD`, or a prompt without echo on a terminal, asked only
//! when a login is really needed. Never the command line.
//!
//! The password lives in zeroizing buffers from the moment it is read, and
//! is copied only into the library's own; nothing here writes it anywhere.

use std::{
    io::{IsTerminal, Read},
    path::Path,
};

use simacan_auth::{Credentials, token::PASSWORD_VAR};
use zeroize::Zeroizing;

use crate::{
    args::PasswordArgs,
    exit::{Code, Failure},
};

/// The password, or how to get it once it is needed.
#[derive(Debug)]
pub(crate) enum Password {
    /// Read already: from a file, standard input or the environment.
    Known(Zeroizing<String>),
    /// Standard input is a terminal: ask there, if a login is needed.
    Prompt,
    /// Nowhere to get one from: only a stored token can be used.
    Unavailable,
}

impl Password {
    /// The source the flags and the environment name, read at once unless
    /// it is the prompt.
    pub(crate) fn from_args(args: &PasswordArgs) -> Result<Password, Failure> {
        if let Some(path) = &args.password_file {
            return read_file(path).map(Password::Known);
        }
        if args.password_stdin {
            return read_stdin().map(Password::Known);
        }
        // Set but empty counts as unset, as shells and CI systems leave it.
        if let Some(value) = std::env::var_os(PASSWORD_VAR).filter(|v| !v.is_empty()) {
            let value = value
                .into_string()
                .map_err(|_| Failure::credentials(format!("{PASSWORD_VAR} is not valid UTF-8")))?;
            return Ok(Password::Known(Zeroizing::new(value)));
        }
        Ok(if std::io::stdin().is_terminal() {
            Password::Prompt
        } else {
            Password::Unavailable
        })
    }

    /// Credentials of `username` with the password if it is known, and
    /// without one otherwise (a stored token is used, never a login).
    pub(crate) fn credentials(&self, username: &str) -> Credentials {
        match self {
            Password::Known(password) => Credentials::new(username, password.as_str()),
            Password::Prompt | Password::Unavailable => Credentials::without_password(username),
        }
    }

    /// Whether the password is to be asked for on the terminal.
    pub(crate) fn is_prompt(&self) -> bool {
        matches!(self, Password::Prompt)
    }

    /// Credentials of `username` with a password asked for on the terminal,
    /// without echo. The prompt blocks, so it runs on a thread of its own:
    /// the run can then react to Ctrl-C (see [`crate::interrupt`]), which
    /// the prompt reads as a key and raises as SIGINT.
    pub(crate) async fn prompt(&self, username: &str, at: &str) -> Result<Credentials, Failure> {
        let prompt = format!("password for {username} at {at}: ");
        let asked = tokio::task::spawn_blocking(move || {
            rpassword::prompt_password(prompt).map(Zeroizing::new)
        })
        .await
        .map_err(|e| Failure::credentials(format!("the password prompt failed: {e}")))?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::Interrupted => crate::interrupt::interrupted(Code::Interrupted),
            _ => Failure::credentials(format!("cannot read the password from the terminal: {e}")),
        })?;
        let password = non_empty(asked, "the prompt")?;
        Ok(Credentials::new(username, password.as_str()))
    }
}

fn read_file(path: &Path) -> Result<Zeroizing<String>, Failure> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        Failure::credentials(format!(
            "cannot read the password file {}: {e}",
            path.display()
        ))
    })?);
    let text = utf8(bytes, &path.display().to_string())?;
    non_empty(
        without_newline(text),
        &format!("password file {}", path.display()),
    )
}

fn read_stdin() -> Result<Zeroizing<String>, Failure> {
    // Sized up front, so that growing does not leave copies behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(4096));
    std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .map_err(|e| {
            Failure::credentials(format!("cannot read the password from standard input: {e}"))
        })?;
    non_empty(
        without_newline(utf8(bytes, "standard input")?),
        "standard input",
    )
}

/// The bytes as text, without a copy.
fn utf8(mut bytes: Zeroizing<Vec<u8>>, what: &str) -> Result<Zeroizing<String>, Failure> {
    String::from_utf8(std::mem::take(&mut *bytes))
        .map(Zeroizing::new)
        .map_err(|e| {
            // The rejected bytes are wiped with their buffer.
            drop(Zeroizing::new(e.into_bytes()));
            Failure::credentials(format!("the password in {what} is not valid UTF-8"))
        })
}

/// Without one trailing `\n` or `\r\n`, as `echo` and editors leave.
fn without_newline(mut text: Zeroizing<String>) -> Zeroizing<String> {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

fn non_empty(password: Zeroizing<String>, from: &str) -> Result<Zeroizing<String>, Failure> {
    if password.is_empty() {
        return Err(Failure::credentials(format!(
            "the password from {from} is empty"
        )));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn one_trailing_newline_is_dropped() {
        for (text, password) in [
            ("pw\n", "pw"),
            ("pw\r\n", "pw"),
            ("pw", "pw"),
            ("pw\n\n", "pw\n"),
            (" pw ", " pw "),
        ] {
            assert_eq!(
                without_newline(Zeroizing::new(text.into())).as_str(),
                password
            );
        }
    }

    #[test]
    fn a_password_file_is_read_whole_and_an_empty_one_refused() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"p@ss w0rd&=%+\n").unwrap();
        assert_eq!(read_file(file.path()).unwrap().as_str(), "p@ss w0rd&=%+");
        let empty = tempfile::NamedTempFile::new().unwrap();
        let refusal = read_file(empty.path()).unwrap_err().to_string();
        assert!(refusal.contains("is empty"), "{refusal}");
        let missing = read_file(Path::new("/nonexistent/password")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/password"));
    }

    #[test]
    fn credentials_take_the_password_only_when_known() {
        let known = Password::Known(Zeroizing::new("pw".into()));
        assert!(known.credentials("u").has_password());
        assert!(!Password::Unavailable.credentials("u").has_password());
        assert!(!Password::Prompt.credentials("u").has_password());
        assert!(!Password::Unavailable.is_prompt());
        assert!(Password::Prompt.is_prompt());
    }
}
