//! The HTTP side: the contract's routes (docs/http-contract.md of
//! fleet-drain) plus `GET /local/stats` and `GET /local/apps/{app}/verify`
//! for tests.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use fleet_drain::http::wire::{ErrorBody, MigrateRequest, SetStateRequest, is_valid_name};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use super::platform::{ApiError, Platform};

/// Largest request body accepted.
const MAX_BODY: usize = 64 << 10;

/// Serves `platform` on `listener` until `shutdown` resolves.
pub async fn serve(
    platform: Platform,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let accept = async {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let platform = platform.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let platform = platform.clone();
                    async move { Ok::<_, Infallible>(handle(&platform, request, peer).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    tokio::select! {
        () = accept => {}
        () = shutdown => {}
    }
}

async fn handle(
    platform: &Platform,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return error(&ApiError::new(
                400,
                "invalid_request",
                format!("reading the body: {e}"),
            ));
        }
    };
    tracing::debug!(%method, path, %peer, "request");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let result = route(platform, &method, &segments, &body).await;
    match result {
        Ok(response) => response,
        Err(e) => error(&e),
    }
}

async fn route(
    platform: &Platform,
    method: &Method,
    segments: &[&str],
    body: &[u8],
) -> Result<Response<Full<Bytes>>, ApiError> {
    if let Some(name) = segments.get(2)
        && !is_valid_name(name)
    {
        return Err(ApiError::new(
            400,
            "invalid_request",
            format!("`{}` is not a valid name", name.escape_debug()),
        ));
    }
    match (method, segments) {
        (&Method::GET, ["v1", "hosts"]) => Ok(json(
            200,
            &Hosts {
                hosts: platform.hosts(),
            },
        )),
        (&Method::GET, ["v1", "apps"]) => Ok(json(
            200,
            &Apps {
                apps: platform.apps(),
            },
        )),
        (&Method::GET, ["v1", "apps", app]) => Ok(json(200, &platform.app(app).await?)),
        (&Method::PUT, ["v1", "hosts", host, "state"]) => {
            let request: SetStateRequest = parse(body)?;
            Ok(json(200, &platform.set_host_state(host, request.state)?))
        }
        (&Method::POST, ["v1", "apps", app, "migrate"]) => {
            let request: MigrateRequest = parse(body)?;
            Ok(json(200, &platform.migrate(app, request).await?))
        }
        (&Method::GET, ["local", "stats"]) => Ok(json(200, &platform.stats())),
        (&Method::GET, ["local", "apps", app, "verify"]) => {
            let problems = platform.verify(app).await?;
            Ok(json(200, &Verify { problems }))
        }
        _ => Err(ApiError::new(
            404,
            "not_found",
            format!("no endpoint {method} /{}", segments.join("/")),
        )),
    }
}

#[derive(Serialize)]
struct Hosts {
    hosts: Vec<super::platform::HostView>,
}

#[derive(Serialize)]
struct Apps {
    apps: Vec<super::platform::AppView>,
}

#[derive(Serialize)]
struct Verify {
    problems: Vec<String>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, "invalid_request", format!("bad JSON body: {e}")))
}

fn json(status: u16, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(error: &ApiError) -> Response<Full<Bytes>> {
    json(error.status, &error.body as &ErrorBody)
}
