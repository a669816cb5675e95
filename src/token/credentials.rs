//! The username and password for the Simacan Auth API.
//!
//! The password is kept in a buffer that is wiped when dropped, and it never
//! appears in `Debug` output.
//!
//! # Example
//!
//! ```
//! use simacan_auth::Credentials;
//!
//! let creds = Credentials::new("planner@example.com", "s3cret");
//! assert_eq!(creds.username(), "planner@example.com");
//! assert!(!format!("{creds:?}").contains("s3cret"));
//! ```

use std::fmt;

use zeroize::Zeroizing;

use crate::Error;

/// The environment variable [`Credentials::from_env`] reads the username from.
pub const USERNAME_VAR: &str = "SIMACAN_USERNAME";
/// The environment variable [`Credentials::from_env`] reads the password from.
pub const PASSWORD_VAR: &str = "SIMACAN_PASSWORD";

/// A username and password handed out by Simacan support. See the
/// [module docs](self).
///
/// # Example
///
/// ```
/// let creds = simacan_auth::Credentials::new("user", "password");
/// # let _ = creds;
/// ```
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: Zeroizing<String>,
}

impl Credentials {
    /// Credentials from a username and a password.
    ///
    /// # Example
    ///
    /// ```
    /// let creds = simacan_auth::Credentials::new("user", String::from("password"));
    /// assert_eq!(creds.username(), "user");
    /// ```
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: Zeroizing::new(password.into()),
        }
    }

    /// Credentials from the environment variables `SIMACAN_USERNAME` and
    /// `SIMACAN_PASSWORD`.
    ///
    /// # Errors
    ///
    /// [`Error::MissingCredentials`] naming the first variable that is unset
    /// or not valid UTF-8.
    ///
    /// # Example
    ///
    /// ```no_run
    /// let creds = simacan_auth::Credentials::from_env()?;
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    pub fn from_env() -> Result<Self, Error> {
        let read = |variable: &'static str| {
            std::env::var(variable).map_err(|_| Error::MissingCredentials { variable })
        };
        let username = read(USERNAME_VAR)?;
        let password = Zeroizing::new(read(PASSWORD_VAR)?);
        Ok(Credentials { username, password })
    }

    /// The username.
    ///
    /// # Example
    ///
    /// ```
    /// assert_eq!(simacan_auth::Credentials::new("u", "p").username(), "u");
    /// ```
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The form body of the password grant, percent-encoded. Wiped on drop.
    pub(crate) fn password_form(&self) -> Zeroizing<String> {
        Zeroizing::new(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("username", &self.username)
                .append_pair("password", &self.password)
                .finish(),
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_form_percent_encodes_special_characters() {
        let creds = Credentials::new("a+b@x.nl", "p&ss=w rd%");
        let form = creds.password_form();
        assert_eq!(
            form.as_str(),
            "username=a%2Bb%40x.nl&password=p%26ss%3Dw+rd%25"
        );
        let decoded: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(decoded[1], ("password".into(), "p&ss=w rd%".into()));
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", Credentials::new("user", "hunter2"));
        assert!(shown.contains("user"));
        assert!(!shown.contains("hunter2"));
    }
}
