//! The username and password for the Simacan Auth API.
//!
//! The password is kept in a buffer that is wiped when dropped, and it never
//! appears in `Debug` output.
//!
//! [`Credentials::without_password`] names a user and holds no password: a
//! layer given them uses and refreshes that user's token from its
//! [token store](crate::store) but never logs in, which suits a tool that
//! asks for the password only when a login is really needed.
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
///
/// # Example
///
/// ```
/// assert_eq!(simacan_auth::token::USERNAME_VAR, "SIMACAN_USERNAME");
/// ```
pub const USERNAME_VAR: &str = "SIMACAN_USERNAME";
/// The environment variable [`Credentials::from_env`] reads the password from.
///
/// # Example
///
/// ```
/// assert_eq!(simacan_auth::token::PASSWORD_VAR, "SIMACAN_PASSWORD");
/// ```
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
    /// `None` for [`Credentials::without_password`].
    password: Option<Zeroizing<String>>,
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
            password: Some(Zeroizing::new(password.into())),
        }
    }

    /// Credentials that name a user and hold no password. A layer given
    /// them uses the user's token from its
    /// [token store](crate::SimacanAuthLayer::token_store), and refreshes
    /// it with the stored refresh token, but never logs in with the
    /// password: when it would have to (nothing usable is stored, or the
    /// Auth API refused the refresh token), it fails with
    /// An error of kind [`PasswordRequired`](crate::ErrorKind::PasswordRequired) without calling the Auth API.
    ///
    /// For a tool that asks for the password only when a login is really
    /// needed: try without it first, and on `PasswordRequired` ask, then
    /// try again with [`Credentials::new`].
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{store::FileStore, Credentials, SimacanAuthLayer};
    ///
    /// let creds = Credentials::without_password("planner@example.com");
    /// assert!(!creds.has_password());
    /// let layer = SimacanAuthLayer::new(creds).token_store(FileStore::new("tokens"));
    /// # let _ = layer;
    /// ```
    pub fn without_password(username: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: None,
        }
    }

    /// Credentials from the environment variables `SIMACAN_USERNAME` and
    /// `SIMACAN_PASSWORD`.
    ///
    /// # Errors
    ///
    /// An error of kind [`Configuration`](crate::ErrorKind::Configuration) naming the first variable that is
    /// unset, empty or not valid UTF-8: an empty password would be sent to
    /// the Auth API, refused, and then wait out the longest backoff.
    ///
    /// # Example
    ///
    /// ```no_run
    /// let creds = simacan_auth::Credentials::from_env()?;
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    pub fn from_env() -> Result<Self, Error> {
        let read = |variable: &'static str| {
            std::env::var(variable)
                .ok()
                .filter(|value| !value.is_empty())
                .ok_or_else(|| Error::missing_variable(variable))
        };
        let username = read(USERNAME_VAR)?;
        let password = Some(Zeroizing::new(read(PASSWORD_VAR)?));
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

    /// Whether these credentials hold a password: `false` only for
    /// [`Credentials::without_password`].
    ///
    /// # Example
    ///
    /// ```
    /// assert!(simacan_auth::Credentials::new("u", "p").has_password());
    /// ```
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The form body of the password grant, percent-encoded, wiped on drop;
    /// `None` without a password.
    pub(crate) fn password_form(&self) -> Option<Zeroizing<String>> {
        let password = self.password.as_deref()?;
        Some(Zeroizing::new(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("username", &self.username)
                .append_pair("password", password)
                .finish(),
        ))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = match self.password {
            Some(_) => "<redacted>",
            None => "<none>",
        };
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &password)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_form_percent_encodes_special_characters() {
        let creds = Credentials::new("a+b@x.nl", "p&ss=w rd%");
        let form = creds.password_form().unwrap();
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
    fn without_a_password_there_is_no_password_form() {
        let creds = Credentials::without_password("user");
        assert!(!creds.has_password());
        assert!(creds.password_form().is_none());
        assert_eq!(
            format!("{creds:?}"),
            r#"Credentials { username: "user", password: "<none>" }"#
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", Credentials::new("user", "hunter2"));
        assert!(shown.contains("user"));
        assert!(!shown.contains("hunter2"));
    }
}
