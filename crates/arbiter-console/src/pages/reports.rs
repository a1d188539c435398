//! The report cards under the console's session: the same PDFs as
//! `GET /v1/requests/{request_id}/report.pdf` and each case flow's case report, for every role
//! that reads requests (analyst, reviewer, auditor, admin), for the signed-in tenant. The server
//! sends the PDF with its download headers.

use super::Page;
use super::cases::CaseKind;
use crate::Session;
use arbiter_core::ErrorCode;
use arbiter_engine::{Engine, EngineError, reports};

/// A report card made for download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdf {
    /// The PDF.
    pub bytes: Vec<u8>,
    /// What it is named for download (`report-<name>.pdf`): the request id, or the flow and
    /// case id.
    pub name: String,
}

/// A request's report card; `verifier_key` is the audit checkpoints' public key, printed for
/// checking. A request this tenant does not have is a 404 page.
pub async fn request(
    engine: Engine<'_>,
    verifier_key: &str,
    session: &Session,
    request_id: &str,
) -> Result<Pdf, Page> {
    let made = async {
        let report =
            reports::request_report(engine, verifier_key, &session.tenant, request_id).await?;
        reports::pdf(report).await
    }
    .await;
    answer(session, made, request_id)
}

/// A case's report card, as [`request`]'s.
pub async fn case(
    engine: Engine<'_>,
    verifier_key: &str,
    session: &Session,
    kind: CaseKind,
    case_id: &str,
) -> Result<Pdf, Page> {
    let made = async {
        let tenant = &session.tenant;
        let report = reports::case_report(engine, verifier_key, tenant, kind.flow, case_id).await?;
        reports::pdf(report).await
    }
    .await;
    answer(session, made, &format!("{}-{case_id}", kind.flow))
}

/// The PDF, or the page saying why there is none: 404 for a missing request or case, 400 for
/// another refusal, 500 (its cause logged) for a failure.
fn answer(session: &Session, made: Result<Vec<u8>, EngineError>, name: &str) -> Result<Pdf, Page> {
    let err = match made {
        Ok(bytes) => {
            return Ok(Pdf {
                bytes,
                name: name.to_owned(),
            });
        }
        Err(err) => err,
    };
    let message = format!("{}.", err.caller_message());
    Err(match err.code() {
        ErrorCode::NotFound => Page::message(404, Some(session), "No report", &message),
        ErrorCode::InternalError => Page::server_error(&err),
        _ => Page::message(400, Some(session), "No report", &message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            tenant: "acme".to_owned(),
            user: "ana".to_owned(),
            role: crate::Role::Analyst,
            csrf: "t".to_owned(),
            expires_at: chrono::Utc::now(),
            cases: Vec::new(),
        }
    }

    #[test]
    fn a_missing_report_is_a_404_and_a_failure_shows_no_cause() {
        let made = answer(&session(), Ok(b"%PDF".to_vec()), "req_1");
        assert_eq!(made.map(|pdf| pdf.name), Ok("req_1".to_owned()));
        let missing = answer(
            &session(),
            Err(EngineError::not_found("no insurance CLM-9 for this tenant")),
            "x",
        )
        .unwrap_err();
        assert_eq!(missing.status, 404);
        assert!(missing.html.contains("no insurance CLM-9 for this tenant."));
        let refused = answer(&session(), Err(EngineError::invalid("bad id")), "x").unwrap_err();
        assert_eq!(refused.status, 400);
        let failed = answer(&session(), Err(EngineError::internal("disk full")), "x").unwrap_err();
        assert_eq!(failed.status, 500);
        assert!(!failed.html.contains("disk full"));
    }
}
