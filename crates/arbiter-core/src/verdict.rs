//! Verdicts and risk levels, as the integration guide defines them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a detector concluded about an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum VerdictLabel {
    /// Evidence that the image is an unaltered capture.
    Authentic,
    /// Evidence that the image was made by a generative model.
    AiGenerated,
    /// Evidence that a real image was altered.
    Manipulated,
    /// Not enough evidence either way.
    Inconclusive,
}

impl VerdictLabel {
    /// Every label, in the guide's order.
    pub const ALL: [VerdictLabel; 4] = [
        VerdictLabel::Authentic,
        VerdictLabel::AiGenerated,
        VerdictLabel::Manipulated,
        VerdictLabel::Inconclusive,
    ];

    /// The label as it is written in JSON and in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictLabel::Authentic => "AUTHENTIC",
            VerdictLabel::AiGenerated => "AI_GENERATED",
            VerdictLabel::Manipulated => "MANIPULATED",
            VerdictLabel::Inconclusive => "INCONCLUSIVE",
        }
    }
}

impl fmt::Display for VerdictLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a verdict should worry the business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RiskLevel {
    /// Confidence below 0.6, or an AUTHENTIC / INCONCLUSIVE verdict.
    Low,
    /// Confidence from 0.6 to 0.85 inclusive.
    Medium,
    /// Confidence above 0.85.
    High,
}

impl RiskLevel {
    /// Every level, lowest first.
    pub const ALL: [RiskLevel; 3] = [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High];

    /// The guide's bands: `LOW` (< 0.6), `MEDIUM` (0.6–0.85), `HIGH` (> 0.85).
    pub fn from_confidence(confidence: f64) -> Self {
        if confidence > 0.85 {
            RiskLevel::High
        } else if confidence >= 0.6 {
            RiskLevel::Medium
        } else {
            RiskLevel::Low
        }
    }

    /// The level as it is written in JSON and in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "LOW",
            RiskLevel::Medium => "MEDIUM",
            RiskLevel::High => "HIGH",
        }
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A label, the confidence in that label (0..1), and the resulting risk level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verdict {
    /// The conclusion.
    pub label: VerdictLabel,
    /// Confidence in `label`, from 0 to 1.
    pub confidence: f64,
    /// The risk level derived from `label` and `confidence`.
    pub risk_level: RiskLevel,
}

impl Verdict {
    /// A verdict whose risk level follows the guide: AI_GENERATED and MANIPULATED take the band of
    /// their confidence; AUTHENTIC and INCONCLUSIVE are LOW whatever the confidence.
    pub fn new(label: VerdictLabel, confidence: f64) -> Self {
        let confidence = confidence.clamp(0.0, 1.0);
        let risk_level = match label {
            VerdictLabel::AiGenerated | VerdictLabel::Manipulated => {
                RiskLevel::from_confidence(confidence)
            }
            VerdictLabel::Authentic | VerdictLabel::Inconclusive => RiskLevel::Low,
        };
        Self {
            label,
            confidence,
            risk_level,
        }
    }

    /// An INCONCLUSIVE verdict: no evidence either way.
    pub fn inconclusive() -> Self {
        Self::new(VerdictLabel::Inconclusive, 0.0)
    }

    /// The confidence in integer basis points (`0.94` → `9400`), as the audit log stores it.
    pub fn confidence_bp(&self) -> i64 {
        to_basis_points(self.confidence)
    }
}

/// A 0..1 score in integer basis points, rounded to the nearest.
pub fn to_basis_points(score: f64) -> i64 {
    // Scores are clamped to 0..1 first, so the cast cannot overflow.
    (score.clamp(0.0, 1.0) * 10_000.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_bands_follow_the_guide() {
        let risk = |label, c| Verdict::new(label, c).risk_level;
        assert_eq!(risk(VerdictLabel::AiGenerated, 0.94), RiskLevel::High);
        assert_eq!(risk(VerdictLabel::AiGenerated, 0.85), RiskLevel::Medium);
        assert_eq!(risk(VerdictLabel::Manipulated, 0.6), RiskLevel::Medium);
        assert_eq!(risk(VerdictLabel::Manipulated, 0.5999), RiskLevel::Low);
        assert_eq!(risk(VerdictLabel::Manipulated, 0.8501), RiskLevel::High);
        // The guide's batch example: AUTHENTIC at 0.91 is LOW.
        assert_eq!(risk(VerdictLabel::Authentic, 0.91), RiskLevel::Low);
        assert_eq!(risk(VerdictLabel::Inconclusive, 0.99), RiskLevel::Low);
    }

    #[test]
    fn confidence_is_clamped_and_converted_to_basis_points() {
        assert_eq!(
            Verdict::new(VerdictLabel::AiGenerated, 0.94).confidence_bp(),
            9400
        );
        assert_eq!(Verdict::new(VerdictLabel::AiGenerated, 1.7).confidence, 1.0);
        assert_eq!(to_basis_points(0.12345), 1235);
        assert_eq!(to_basis_points(-3.0), 0);
    }

    #[test]
    fn labels_serialize_as_the_guide_writes_them() {
        let json = serde_json::to_string(&VerdictLabel::ALL).unwrap();
        assert_eq!(
            json,
            r#"["AUTHENTIC","AI_GENERATED","MANIPULATED","INCONCLUSIVE"]"#
        );
        for label in VerdictLabel::ALL {
            assert_eq!(serde_json::to_value(label).unwrap(), label.as_str());
        }
    }
}
