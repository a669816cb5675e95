//! The grant calls: form POSTs to `/auth/password` and `/auth/refresh`,
//! each with its own timeout, and what their answers mean.
//!
//! The HTTP work goes through [`Transport`], so the token cache can be driven
//! by an in-memory fake in unit tests and by other HTTP stacks.

use std::{sync::Arc, time::Duration};

use http::{StatusCode, Uri};
use zeroize::Zeroizing;

use super::transport::{RawResponse, Transport};
use crate::{
    Endpoint, Error,
    token::{Credentials, Environment, backoff::MAX_RETRY_AFTER, grant::Grant},
};

/// Why a refresh grant did not produce a token.
pub(crate) enum RefreshError {
    /// `/auth/refresh` answered 401 or 400 `invalid_grant`: the refresh
    /// token is spent; log in with the password.
    Rejected,
    /// Anything else: keep the refresh token, back off.
    Failed(Error),
}

/// Calls the Auth API of one environment.
#[derive(Clone)]
pub(crate) struct AuthApi {
    environment: Environment,
    transport: Arc<dyn Transport>,
    timeout: Duration,
}

impl AuthApi {
    pub(crate) fn new(
        environment: Environment,
        transport: Arc<dyn Transport>,
        timeout: Duration,
    ) -> Self {
        AuthApi {
            environment,
            transport,
            timeout,
        }
    }

    /// The password grant; an error of kind [`PasswordRequired`](crate::ErrorKind::PasswordRequired), without a call,
    /// for credentials without a password.
    pub(crate) async fn password(&self, credentials: &Credentials) -> Result<Grant, Error> {
        let endpoint = Endpoint::Password;
        let form = credentials
            .password_form()
            .ok_or_else(Error::password_required)?;
        let url = self.environment.endpoint_uri(endpoint)?;
        let response = self.post(endpoint, &url, form).await?;
        if response.status == StatusCode::OK {
            return Grant::parse(&response.body)
                .map_err(|reason| Error::malformed(endpoint, &url, reason));
        }
        if is_rejection(&response) {
            return Err(Error::invalid_credentials());
        }
        Err(unexpected(endpoint, &url, &response))
    }

    /// The refresh grant, which rotates the refresh token.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<Grant, RefreshError> {
        let endpoint = Endpoint::Refresh;
        let form = Zeroizing::new(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("refresh_token", refresh_token)
                .finish(),
        );
        let url = self
            .environment
            .endpoint_uri(endpoint)
            .map_err(RefreshError::Failed)?;
        let response = self
            .post(endpoint, &url, form)
            .await
            .map_err(RefreshError::Failed)?;
        if response.status == StatusCode::OK {
            return Grant::parse(&response.body)
                .map_err(|reason| RefreshError::Failed(Error::malformed(endpoint, &url, reason)));
        }
        if is_rejection(&response) {
            return Err(RefreshError::Rejected);
        }
        Err(RefreshError::Failed(unexpected(endpoint, &url, &response)))
    }

    /// Posts `form` to `url`, the full URL of `endpoint`, which every error
    /// of the call names.
    async fn post(
        &self,
        endpoint: Endpoint,
        url: &Uri,
        form: Zeroizing<String>,
    ) -> Result<RawResponse, Error> {
        let call = self.transport.post_form(endpoint, url.clone(), form);
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| Error::timeout(endpoint, url, self.timeout))?
    }
}

/// 401, or 400 with the OAuth error `invalid_grant`: the grant was refused.
fn is_rejection(response: &RawResponse) -> bool {
    match response.status {
        StatusCode::UNAUTHORIZED => true,
        StatusCode::BAD_REQUEST => serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|v| {
                v.get("error")
                    .and_then(|e| e.as_str())
                    .map(|e| e == "invalid_grant")
            })
            .unwrap_or(false),
        _ => false,
    }
}

fn unexpected(endpoint: Endpoint, url: &Uri, response: &RawResponse) -> Error {
    let retry_after = response
        .headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    Error::unexpected_status(endpoint, url, response.status, retry_after)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::HeaderMap;

    use super::*;

    fn url() -> Uri {
        Uri::from_static("https://auth.example.com/api/v1/auth/refresh")
    }

    fn response(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn only_401_and_invalid_grant_are_rejections() {
        assert!(is_rejection(&response(401, "")));
        assert!(is_rejection(&response(400, r#"{"error":"invalid_grant"}"#)));
        assert!(!is_rejection(&response(
            400,
            r#"{"error":"invalid_request"}"#
        )));
        assert!(!is_rejection(&response(400, "garbage")));
        assert!(!is_rejection(&response(403, "")));
        assert!(!is_rejection(&response(500, "")));
    }

    #[test]
    fn retry_after_seconds_are_read_and_capped() {
        let mut r = response(503, "");
        r.headers
            .insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            unexpected(Endpoint::Refresh, &url(), &r).retry_after(),
            Some(Duration::from_secs(7))
        );
        r.headers
            .insert(http::header::RETRY_AFTER, "99999999".parse().unwrap());
        assert_eq!(
            unexpected(Endpoint::Refresh, &url(), &r).retry_after(),
            Some(MAX_RETRY_AFTER)
        );
        r.headers
            .insert(http::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(
            unexpected(Endpoint::Refresh, &url(), &r).retry_after(),
            None
        );
    }
}
