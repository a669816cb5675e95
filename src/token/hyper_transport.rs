//! The [`Transport`] used in production: a hyper-util client, HTTPS through
//! the crate's one TLS setup ([`crate::https`]) with the `rustls` feature,
//! plain HTTP for loopback base URLs.

use bytes::Bytes;
use http::{header, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use zeroize::Zeroizing;

use super::client::{BoxFuture, RawResponse, Transport, MAX_RESPONSE_BYTES};
use crate::{Endpoint, Error};

#[cfg(feature = "rustls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "rustls"))]
type Connector = HttpConnector;

const USER_AGENT: &str = concat!("simacan-auth/", env!("CARGO_PKG_VERSION"));

pub(crate) struct HyperTransport {
    client: Client<Connector, Full<Bytes>>,
}

impl HyperTransport {
    pub(crate) fn new() -> Self {
        #[cfg(feature = "rustls")]
        let connector = crate::https::connector(crate::https::Schemes::HttpsOrHttp);
        #[cfg(not(feature = "rustls"))]
        let connector = {
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            http
        };
        HyperTransport {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

impl Transport for HyperTransport {
    fn post_form(
        &self,
        endpoint: Endpoint,
        uri: Uri,
        form: Zeroizing<String>,
    ) -> BoxFuture<'static, Result<RawResponse, Error>> {
        let client = self.client.clone();
        Box::pin(async move {
            if cfg!(not(feature = "rustls")) && uri.scheme_str() == Some("https") {
                return Err(Error::config(
                    "https needs the `rustls` feature of simacan-auth",
                ));
            }
            let request = Request::builder()
                .method(Method::POST)
                .uri(uri.clone())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "application/json")
                .header(header::USER_AGENT, USER_AGENT)
                .body(Full::new(Bytes::copy_from_slice(form.as_bytes())))
                .map_err(|e| Error::unreachable(endpoint, &uri, e))?;
            drop(form);
            let response = client
                .request(request)
                .await
                .map_err(|e| Error::unreachable(endpoint, &uri, e))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        Error::ResponseTooLarge {
                            endpoint,
                            url: crate::error::url_of(&uri),
                            limit: MAX_RESPONSE_BYTES,
                            retry_after: None,
                        }
                    } else {
                        Error::unreachable(endpoint, &uri, e)
                    }
                })?
                .to_bytes();
            Ok(RawResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        })
    }
}
