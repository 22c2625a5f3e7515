//! Errors as `application/problem+json` (RFC 9457): a status, a short title and
//! a detail a person can act on. Database errors are logged here and never sent
//! to the client as they are.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// A problem report (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, and what to do about it.
    pub detail: String,
    /// Each error of a refused DAG file, `file:line:column: message` (422).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    /// Listed one by one in the problem (a refused DAG file's errors).
    pub errors: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, detail)
    }
    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            errors: self.errors.clone(),
        }
    }
}

impl From<gale_store::Error> for ApiError {
    fn from(e: gale_store::Error) -> ApiError {
        match e {
            gale_store::Error::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database unavailable while serving a request");
                ApiError::unavailable("the database is unavailable; try again shortly")
            }
            gale_store::Error::Full(msg) => {
                tracing::warn!(error = %msg, "the database's disk is full while serving a request");
                ApiError::unavailable(
                    "the database's disk is full: writes fail until space is freed on it",
                )
            }
            gale_store::Error::Invalid(msg) => {
                tracing::info!(error = %msg, "request refused by the store");
                ApiError::bad_request(msg)
            }
            gale_store::Error::Database(msg) => {
                tracing::error!(error = %msg, "database error while serving a request");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error (the server log has the details)",
                )
            }
        }
    }
}

/// The one table from an action's error to its status: not found 404,
/// conflict 409, refused input 400, store errors by kind (as any store error).
impl From<gale_actions::Error> for ApiError {
    fn from(e: gale_actions::Error) -> ApiError {
        match e {
            gale_actions::Error::NotFound(detail) => ApiError::not_found(detail),
            gale_actions::Error::Conflict(detail) => ApiError::conflict(detail),
            gale_actions::Error::Invalid(detail) | gale_actions::Error::Inconsistent(detail) => {
                ApiError::bad_request(detail)
            }
            gale_actions::Error::Rejected(errors) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                detail: format!(
                    "{} error{} in the DAG files: nothing was stored",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                ),
                errors,
            },
            gale_actions::Error::Store(e) => e.into(),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        match e.downcast::<gale_store::Error>() {
            Ok(store) => store.into(),
            Err(e) => ApiError::bad_request(format!("{e:#}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `axum::Json` whose rejections are problems: malformed JSON and wrong
/// fields are 400, a missing JSON content type is 415. The body must be a
/// JSON object: serde would also fill a struct from an array, field by field
/// in order (`[true]` as `{"downstream": true}`), which no client means.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "the JSON body must be an object (`{...}`)",
            ));
        }
        serde_json::from_value(value)
            .map(Json)
            .map_err(|e| ApiError::bad_request(format!("the JSON body does not fit: {e}")))
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request(format!("the body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::bad_request(format!("the JSON body does not fit: {}", e.body_text()))
        }
        JsonRejection::BytesRejection(e) => ApiError::new(
            e.status(),
            format!("cannot read the body: {}", e.body_text()),
        ),
        other => ApiError::bad_request(other.body_text()),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` whose rejections are 400 problems.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::bad_request(
                format!("bad query parameters: {}", e.body_text()),
            )),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// `axum::extract::Path` whose rejections are problems (400: an id of the
/// wrong type).
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::bad_request(
                format!("bad path: {}", e.body_text()),
            )),
            Err(e) => Err(ApiError::new(e.status(), e.body_text())),
        }
    }
}
