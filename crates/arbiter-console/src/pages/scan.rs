//! The scan page's pieces that the request page shows too: the models' scores and evidence,
//! and the splicing heatmap.

use super::html::{escape, percent};
use serde_json::Value;

/// The first heatmap among the model results (the splicing model's), as base64 PNG.
pub fn heatmap_of(models: &Value) -> Option<String> {
    models
        .as_object()?
        .values()
        .find_map(|model| model["heatmap"]["png_base64"].as_str())
        .filter(|png| {
            png.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        })
        .map(str::to_owned)
}

/// The models' scores and evidence.
pub fn models_table(models: &Value) -> String {
    let Some(models) = models.as_object() else {
        return String::new();
    };
    let rows: String = models
        .iter()
        .map(|(name, model)| {
            format!(
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&name.replace('_', " ")),
                percent(model["score"].as_f64()),
                escape(model["label"].as_str().unwrap_or("")),
                escape(model["detail"].as_str().unwrap_or("")),
            )
        })
        .collect();
    format!(
        r#"<div class="table-wrap"><table><caption class="muted">Models: score (higher is more suspicious) and evidence</caption><thead><tr><th scope="col">Model</th><th scope="col">Score</th><th scope="col">Label</th><th scope="col">Evidence</th></tr></thead><tbody>{rows}</tbody></table></div>"#
    )
}
