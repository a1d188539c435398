//! Four-eyes policy change control: proposals (`policy_proposals`), every activation of a
//! policy version (`policy_activations`), and the live version of each flow (`policy_heads`).
//! The rules (who may approve, when a proposal is stale) are the server's; this module reads
//! and writes rows.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, Value};

fn placeholders(backend: DbBackend, sql: &str) -> String {
    match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace('$', "?"),
    }
}

fn statement(
    conn: &impl ConnectionTrait,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Statement {
    let backend = conn.get_database_backend();
    Statement::from_sql_and_values(backend, placeholders(backend, sql), values)
}

/// A proposal's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalRow {
    /// `prop_...`.
    pub id: String,
    /// The flow the policy decides.
    pub flow: String,
    /// `metadata.id`.
    pub policy_id: String,
    /// `metadata.version`.
    pub version: i32,
    /// SHA-256 of the text.
    pub sha256: String,
    /// The exact text.
    pub source: String,
    /// The live version's SHA-256 when it was proposed; `None` when the flow had none in the
    /// database.
    pub base_sha256: Option<String>,
    /// For a rollback, the version it restores.
    pub rollback_to: Option<i32>,
    /// Who proposed it.
    pub proposed_by: String,
    /// When.
    pub proposed_at: DateTime<Utc>,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    /// Who approved or rejected it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// The checks made when it was proposed (JSON).
    pub checks: String,
}

const PROPOSAL_COLUMNS: &str = "id, flow, policy_id, version, sha256, source, base_sha256, \
     rollback_to, proposed_by, proposed_at, status, decided_by, decided_at, reason, checks";

fn proposal(row: &QueryResult) -> Result<ProposalRow, DbErr> {
    Ok(ProposalRow {
        id: row.try_get_by_index(0)?,
        flow: row.try_get_by_index(1)?,
        policy_id: row.try_get_by_index(2)?,
        version: row.try_get_by_index(3)?,
        sha256: row.try_get_by_index(4)?,
        source: row.try_get_by_index(5)?,
        base_sha256: row.try_get_by_index(6)?,
        rollback_to: row.try_get_by_index(7)?,
        proposed_by: row.try_get_by_index(8)?,
        proposed_at: row.try_get_by_index(9)?,
        status: row.try_get_by_index(10)?,
        decided_by: row.try_get_by_index(11)?,
        decided_at: row.try_get_by_index(12)?,
        reason: row.try_get_by_index(13)?,
        checks: row.try_get_by_index(14)?,
    })
}

/// Stores a new proposal.
pub async fn insert_proposal(conn: &impl ConnectionTrait, row: &ProposalRow) -> Result<(), DbErr> {
    let sql = format!(
        "INSERT INTO policy_proposals ({PROPOSAL_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    );
    let values: [Value; 15] = [
        row.id.clone().into(),
        row.flow.clone().into(),
        row.policy_id.clone().into(),
        row.version.into(),
        row.sha256.clone().into(),
        row.source.clone().into(),
        row.base_sha256.clone().into(),
        row.rollback_to.into(),
        row.proposed_by.clone().into(),
        row.proposed_at.into(),
        row.status.clone().into(),
        row.decided_by.clone().into(),
        row.decided_at.into(),
        row.reason.clone().into(),
        row.checks.clone().into(),
    ];
    conn.execute_raw(statement(conn, &sql, values))
        .await
        .map(drop)
}

/// A proposal by id.
pub async fn proposal_by_id(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<ProposalRow>, DbErr> {
    let sql = format!("SELECT {PROPOSAL_COLUMNS} FROM policy_proposals WHERE id = $1");
    conn.query_one_raw(statement(conn, &sql, [id.into()]))
        .await?
        .as_ref()
        .map(proposal)
        .transpose()
}

/// The newest proposals first, at most `limit`.
pub async fn proposals(conn: &impl ConnectionTrait, limit: u64) -> Result<Vec<ProposalRow>, DbErr> {
    let sql = format!(
        "SELECT {PROPOSAL_COLUMNS} FROM policy_proposals ORDER BY proposed_at DESC, id DESC \
         LIMIT {limit}"
    );
    conn.query_all_raw(statement(conn, &sql, []))
        .await?
        .iter()
        .map(proposal)
        .collect()
}

/// Marks a pending proposal approved or rejected; `false` when it is no longer pending.
pub async fn decide_proposal(
    conn: &impl ConnectionTrait,
    id: &str,
    status: &str,
    by: &str,
    at: DateTime<Utc>,
    reason: Option<&str>,
) -> Result<bool, DbErr> {
    let sql = "UPDATE policy_proposals SET status = $1, decided_by = $2, decided_at = $3, \
               reason = $4 WHERE id = $5 AND status = 'pending'";
    let values: [Value; 5] = [
        status.into(),
        by.into(),
        at.into(),
        reason.map(str::to_owned).into(),
        id.into(),
    ];
    let result = conn.execute_raw(statement(conn, sql, values)).await?;
    Ok(result.rows_affected() == 1)
}

/// The SHA-256 of the live version of a flow, as recorded.
pub async fn head(conn: &impl ConnectionTrait, flow: &str) -> Result<Option<String>, DbErr> {
    let sql = "SELECT sha256 FROM policy_heads WHERE flow = $1";
    conn.query_one_raw(statement(conn, sql, [flow.into()]))
        .await?
        .map(|row| row.try_get_by_index(0))
        .transpose()
}

/// The live version of every flow that has one recorded: flow and SHA-256.
pub async fn heads(conn: &impl ConnectionTrait) -> Result<Vec<(String, String)>, DbErr> {
    let sql = "SELECT flow, sha256 FROM policy_heads ORDER BY flow";
    conn.query_all_raw(statement(conn, sql, []))
        .await?
        .iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect()
}

/// Moves a flow's live version from `expected` (`None`: the flow has none yet) to `sha256`;
/// `false`, changing nothing, when the live version is no longer `expected`.
pub async fn swap_head(
    conn: &impl ConnectionTrait,
    flow: &str,
    expected: Option<&str>,
    sha256: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = match expected {
        Some(expected) => {
            let sql = "UPDATE policy_heads SET sha256 = $1, updated_at = $2 \
                       WHERE flow = $3 AND sha256 = $4";
            let values: [Value; 4] = [sha256.into(), now.into(), flow.into(), expected.into()];
            conn.execute_raw(statement(conn, sql, values)).await?
        }
        None => {
            let sql = "INSERT INTO policy_heads (flow, sha256, updated_at) VALUES ($1, $2, $3) \
                       ON CONFLICT (flow) DO NOTHING";
            let values: [Value; 3] = [flow.into(), sha256.into(), now.into()];
            conn.execute_raw(statement(conn, sql, values)).await?
        }
    };
    Ok(result.rows_affected() == 1)
}

/// Sets a flow's live version whatever it was (a policy file activated by a server that
/// watches files).
pub async fn set_head(
    conn: &impl ConnectionTrait,
    flow: &str,
    sha256: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let sql = "INSERT INTO policy_heads (flow, sha256, updated_at) VALUES ($1, $2, $3) \
               ON CONFLICT (flow) DO UPDATE SET sha256 = excluded.sha256, \
               updated_at = excluded.updated_at";
    let values: [Value; 3] = [flow.into(), sha256.into(), now.into()];
    conn.execute_raw(statement(conn, sql, values))
        .await
        .map(drop)
}

/// One activation of a policy version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRow {
    /// The flow.
    pub flow: String,
    /// `metadata.id`.
    pub policy_id: String,
    /// `metadata.version`.
    pub version: i32,
    /// SHA-256 of the text.
    pub sha256: String,
    /// The approved proposal; `None` for a file a server activated.
    pub proposal_id: Option<String>,
    /// Who proposed it.
    pub proposed_by: Option<String>,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// Who or what activated it (the approver, `startup`, `reload`).
    pub actor: String,
    /// When.
    pub activated_at: DateTime<Utc>,
}

/// Records an activation.
pub async fn insert_activation(
    conn: &impl ConnectionTrait,
    row: &ActivationRow,
) -> Result<(), DbErr> {
    let sql = "INSERT INTO policy_activations (flow, policy_id, version, sha256, proposal_id, \
               proposed_by, approved_by, actor, activated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    let values: [Value; 9] = [
        row.flow.clone().into(),
        row.policy_id.clone().into(),
        row.version.into(),
        row.sha256.clone().into(),
        row.proposal_id.clone().into(),
        row.proposed_by.clone().into(),
        row.approved_by.clone().into(),
        row.actor.clone().into(),
        row.activated_at.into(),
    ];
    conn.execute_raw(statement(conn, sql, values))
        .await
        .map(drop)
}

/// Every activation of a flow's policy, oldest first.
pub async fn activations(
    conn: &impl ConnectionTrait,
    flow: &str,
) -> Result<Vec<ActivationRow>, DbErr> {
    let sql = "SELECT flow, policy_id, version, sha256, proposal_id, proposed_by, approved_by, \
               actor, activated_at FROM policy_activations WHERE flow = $1 ORDER BY id";
    conn.query_all_raw(statement(conn, sql, [flow.into()]))
        .await?
        .iter()
        .map(|row| {
            Ok(ActivationRow {
                flow: row.try_get_by_index(0)?,
                policy_id: row.try_get_by_index(1)?,
                version: row.try_get_by_index(2)?,
                sha256: row.try_get_by_index(3)?,
                proposal_id: row.try_get_by_index(4)?,
                proposed_by: row.try_get_by_index(5)?,
                approved_by: row.try_get_by_index(6)?,
                actor: row.try_get_by_index(7)?,
                activated_at: row.try_get_by_index(8)?,
            })
        })
        .collect()
}
