//! Routes over several detectors: a cascade, an ensemble or a failover. A route is itself a
//! detector; its name (`local,reality_defender`) is recorded in analyses and keys the result
//! cache.

use crate::call::Provider;
use crate::config::{RouteMode, RouteSpec};
use arbiter_core::{
    Analysis, AnalyzeOptions, DetectError, Detector, DetectorRun, MediaInput, ModelKind,
    ModelLabel, RunStatus, VerdictLabel,
};
use async_trait::async_trait;
use std::sync::Arc;

/// One detector a route names, as a plugin builds it: a detector running in this process, or a
/// vendor's provider with its limits.
#[derive(Clone)]
pub enum Member {
    /// A detector running in this process, which answers or fails (the local one).
    Plain(Arc<dyn Detector>),
    /// A vendor, which may also be skipped (budget spent with `on_budget_spent: skip`).
    Provider(Arc<Provider>),
}

impl Member {
    fn name(&self) -> &str {
        match self {
            Member::Plain(detector) => detector.name(),
            Member::Provider(provider) => provider.name(),
        }
    }

    async fn run(
        &self,
        media: &MediaInput,
        options: &AnalyzeOptions,
    ) -> Result<Analysis, (RunStatus, DetectError)> {
        match self {
            Member::Plain(detector) => detector
                .analyze(media, options)
                .await
                .map_err(|err| (RunStatus::Failed, err)),
            Member::Provider(provider) => provider
                .run(media, options)
                .await
                .map_err(|u| (u.status, u.error)),
        }
    }
}

/// Several detectors deciding together.
pub struct Route {
    name: String,
    mode: RouteMode,
    members: Vec<Member>,
}

impl Route {
    /// A route over these members, in order.
    pub fn new(spec: &RouteSpec, members: Vec<Member>) -> Self {
        Self {
            name: spec.name(),
            mode: spec.mode,
            members,
        }
    }

    async fn cascade(
        &self,
        media: &MediaInput,
        options: &AnalyzeOptions,
        cascade: bool,
    ) -> Result<Analysis, DetectError> {
        let mut answers = Vec::new();
        let mut runs = Vec::new();
        let mut failures = Vec::new();
        for member in &self.members {
            match member.run(media, options).await {
                Ok(analysis) => {
                    runs.extend(runs_of(member.name(), &analysis));
                    let decided = analysis.verdict.label != VerdictLabel::Inconclusive;
                    answers.push(analysis);
                    // A failover ends with the first answer; a cascade with the first definite one.
                    if !cascade || decided {
                        break;
                    }
                }
                // An input error is the image's, whoever found it.
                Err((_, err @ DetectError::Input { .. })) => return Err(err),
                Err((status, err)) => {
                    runs.push(DetectorRun::without_answer(
                        member.name(),
                        status,
                        message_of(&err),
                    ));
                    // A cascade that cannot ask the detector it needs fails, unless the detector
                    // is to be skipped; a failover asks the next.
                    if cascade && status == RunStatus::Failed {
                        return Err(err);
                    }
                    failures.push(err);
                }
            }
        }
        let Some(last) = answers.pop() else {
            return Err(self.nobody_answered(failures));
        };
        Ok(self.combine(answers, last, runs))
    }

    async fn ensemble(
        &self,
        media: &MediaInput,
        options: &AnalyzeOptions,
    ) -> Result<Analysis, DetectError> {
        let results = futures_util::future::join_all(
            self.members.iter().map(|member| member.run(media, options)),
        )
        .await;
        let mut answers = Vec::new();
        let mut runs = Vec::new();
        let mut failures = Vec::new();
        for (member, result) in self.members.iter().zip(results) {
            match result {
                Ok(analysis) => {
                    runs.extend(runs_of(member.name(), &analysis));
                    answers.push(analysis);
                }
                Err((_, err @ DetectError::Input { .. })) => return Err(err),
                Err((status, err)) => {
                    runs.push(DetectorRun::without_answer(
                        member.name(),
                        status,
                        message_of(&err),
                    ));
                    failures.push(err);
                }
            }
        }
        // The verdict of the highest risk wins; at equal risk a definite label beats INCONCLUSIVE,
        // then the higher confidence; at a full tie the earlier detector.
        let Some(best) = (0..answers.len()).max_by(|&a, &b| {
            let key = |i: usize| {
                let v = answers[i].verdict;
                (v.risk_level, v.label != VerdictLabel::Inconclusive)
            };
            key(a)
                .cmp(&key(b))
                .then(
                    answers[a]
                        .verdict
                        .confidence
                        .partial_cmp(&answers[b].verdict.confidence)
                        .unwrap_or(std::cmp::Ordering::Equal),
                )
                .then(b.cmp(&a))
        }) else {
            return Err(self.nobody_answered(failures));
        };
        let labels: std::collections::BTreeSet<_> =
            answers.iter().map(|a| a.verdict.label.as_str()).collect();
        if labels.len() > 1 {
            tracing::info!(route = %self.name, labels = ?labels, "ensemble members disagree");
        }
        let winner = answers.remove(best);
        Ok(self.combine(answers, winner, runs))
    }

    /// The route's analysis: `decider`'s verdict; the models, metadata and intake facts of every
    /// answer (earlier answers first, so the local detector's metadata stays); every run.
    fn combine(
        &self,
        others: Vec<Analysis>,
        decider: Analysis,
        runs: Vec<DetectorRun>,
    ) -> Analysis {
        // The members of a cascade or failover ran one after another, an ensemble's at once.
        let times = others
            .iter()
            .chain([&decider])
            .map(|a| a.processing_time_ms);
        let processing_time_ms = match self.mode {
            RouteMode::Ensemble => times.max().unwrap_or_default(),
            RouteMode::Cascade | RouteMode::Failover => times.sum(),
        };
        let mut combined = Analysis {
            verdict: decider.verdict,
            model_results: Default::default(),
            image_info: decider.image_info.clone(),
            metadata: Default::default(),
            detector: self.name.clone(),
            processing_time_ms,
            providers: runs,
        };
        for answer in others.into_iter().chain([decider]) {
            for kind in ModelKind::ALL {
                let ran = |r: Option<&arbiter_core::ModelResult>| {
                    r.is_some_and(|r| r.label != ModelLabel::NotRun)
                };
                if ran(combined.model_results.get(kind)) || answer.model_results.get(kind).is_none()
                {
                    continue;
                }
                if kind == ModelKind::Metadata {
                    combined.model_results.metadata_analysis =
                        answer.model_results.metadata_analysis.clone();
                } else if let Some(result) = answer.model_results.get(kind) {
                    combined.model_results.set(kind, result.clone());
                }
            }
            if combined.metadata == Default::default() {
                combined.metadata = answer.metadata;
            }
        }
        combined
    }

    fn nobody_answered(&self, failures: Vec<DetectError>) -> DetectError {
        let why: Vec<String> = failures.iter().map(|e| e.to_string()).collect();
        DetectError::Failed {
            detector: self.name.clone(),
            message: format!("no detector of the route answered: {}", why.join("; ")),
        }
    }
}

/// The runs an answer contributes: a vendor's own record, or the local detector's verdict.
fn runs_of(name: &str, analysis: &Analysis) -> Vec<DetectorRun> {
    if analysis.providers.is_empty() {
        vec![DetectorRun::answered(name, analysis)]
    } else {
        analysis.providers.clone()
    }
}

/// What an error says, without the detector's name (the record it goes into is named already).
pub(crate) fn message_of(err: &DetectError) -> String {
    match err {
        DetectError::Failed { message, .. } | DetectError::Input { message, .. } => message.clone(),
        busy @ DetectError::Busy { .. } => busy.to_string(),
    }
}

#[async_trait]
impl Detector for Route {
    fn name(&self) -> &str {
        &self.name
    }

    fn models(&self) -> &[ModelKind] {
        &ModelKind::ALL
    }

    async fn analyze(
        &self,
        input: &MediaInput,
        options: &AnalyzeOptions,
    ) -> Result<Analysis, DetectError> {
        match self.mode {
            RouteMode::Cascade => self.cascade(input, options, true).await,
            RouteMode::Failover => self.cascade(input, options, false).await,
            RouteMode::Ensemble => self.ensemble(input, options).await,
        }
    }

    async fn health(&self) -> Result<(), DetectError> {
        for member in &self.members {
            match member {
                Member::Plain(detector) => detector.health().await?,
                Member::Provider(provider) => provider.health().await?,
            }
        }
        Ok(())
    }
}
