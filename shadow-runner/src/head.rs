//! Linear classification heads over sentence embeddings (`scores = x Wᵀ + b`), loaded from
//! safetensors (`weight` `[classes, dim]`, `bias` `[classes]`) plus a JSON list of label names.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::error::{read_file, require_file, Error, Result};

/// How a head turns its linear scores into an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// Multinomial logistic regression: softmax probabilities, argmax label.
    Softmax,
    /// Margin classifier (e.g. one-vs-rest LinearSVC): raw decision scores, argmax label.
    DecisionScores,
}

/// One prediction of a head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Index of the winning class.
    pub index: usize,
    /// Name of the winning class.
    pub label: String,
    /// The winning class's probability ([`HeadKind::Softmax`]) or decision score.
    pub score: f32,
    /// Probabilities or decision scores of every class, in label order.
    pub scores: Vec<f32>,
}

/// A linear head: weights on the encoder's device plus label names.
#[derive(Debug)]
pub struct LinearHead {
    weight_t: Tensor,
    bias: Tensor,
    labels: Vec<String>,
    kind: HeadKind,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LabelsFile {
    Object { labels: Vec<String> },
    List(Vec<String>),
}

impl LinearHead {
    /// Loads `weights` (safetensors with `weight` and `bias`) and `labels` (JSON: a list of names,
    /// or `{"labels": [...]}`) onto `device`.
    pub fn load(weights: &Path, labels: &Path, kind: HeadKind, device: &Device) -> Result<Self> {
        require_file(weights)?;
        let invalid = |path: &Path, message: String| Error::InvalidFile {
            path: path.to_path_buf(),
            message,
        };
        let labels_json: LabelsFile = serde_json::from_slice(&read_file(labels)?)
            .map_err(|e| invalid(labels, format!("expected a JSON list of label names: {e}")))?;
        let labels_vec = match labels_json {
            LabelsFile::Object { labels } | LabelsFile::List(labels) => labels,
        };
        let mut tensors = candle_core::safetensors::load(weights, device)
            .map_err(|e| invalid(weights, format!("cannot load safetensors: {e}")))?;
        let weight = tensors
            .remove("weight")
            .ok_or_else(|| invalid(weights, "no tensor named `weight`".to_string()))?
            .to_dtype(DType::F32)?;
        let bias = tensors
            .remove("bias")
            .ok_or_else(|| invalid(weights, "no tensor named `bias`".to_string()))?
            .to_dtype(DType::F32)?;
        let (classes, _dim) = weight.dims2().map_err(|_| {
            invalid(
                weights,
                format!("`weight` must be 2-D, is {:?}", weight.shape()),
            )
        })?;
        if bias.dims() != [classes] {
            return Err(invalid(
                weights,
                format!("`bias` must be [{classes}], is {:?}", bias.shape()),
            ));
        }
        if labels_vec.len() != classes {
            return Err(invalid(
                labels,
                format!(
                    "{} labels for a head with {classes} classes",
                    labels_vec.len()
                ),
            ));
        }
        Self::from_tensors(weight, bias, labels_vec, kind)
    }

    /// Builds a head from in-memory tensors (`weight` `[classes, dim]`, `bias` `[classes]`).
    pub fn from_tensors(
        weight: Tensor,
        bias: Tensor,
        labels: Vec<String>,
        kind: HeadKind,
    ) -> Result<Self> {
        let (classes, _) = weight.dims2()?;
        if bias.dims() != [classes] || labels.len() != classes {
            return Err(Error::Incomparable(format!(
                "head has {classes} weight rows, bias {:?} and {} labels",
                bias.shape(),
                labels.len()
            )));
        }
        Ok(Self {
            weight_t: weight.t()?.contiguous()?,
            bias,
            labels,
            kind,
        })
    }

    /// Class names, in score order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Input dimension.
    pub fn dim(&self) -> usize {
        self.weight_t.dims()[0]
    }

    /// Softmax or decision scores.
    pub fn kind(&self) -> HeadKind {
        self.kind
    }

    /// Linear scores (`[n, classes]`) for embeddings `[n, dim]`; softmax applied for
    /// [`HeadKind::Softmax`].
    pub fn scores(&self, embeddings: &Tensor) -> Result<Tensor> {
        let (_, dim) = embeddings.dims2()?;
        if dim != self.dim() {
            return Err(Error::Incomparable(format!(
                "embeddings have dimension {dim}, the head expects {}",
                self.dim()
            )));
        }
        let x = embeddings
            .to_dtype(DType::F32)?
            .to_device(self.weight_t.device())?;
        let logits = x.matmul(&self.weight_t)?.broadcast_add(&self.bias)?;
        Ok(match self.kind {
            HeadKind::Softmax => candle_nn::ops::softmax_last_dim(&logits)?,
            HeadKind::DecisionScores => logits,
        })
    }

    /// Predicts one label per embedding row.
    pub fn predict(&self, embeddings: &Tensor) -> Result<Vec<Prediction>> {
        let scores = self.scores(embeddings)?;
        let best = scores.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let rows = scores.to_vec2::<f32>()?;
        rows.into_iter()
            .zip(best)
            .map(|(scores, index)| {
                let index = index as usize;
                let label = self.labels.get(index).cloned().ok_or_else(|| {
                    Error::Incomparable(format!("argmax {index} outside the label list"))
                })?;
                Ok(Prediction {
                    index,
                    label,
                    score: scores[index],
                    scores,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(kind: HeadKind) -> LinearHead {
        let device = Device::Cpu;
        let weight = Tensor::new(&[[1f32, 0.], [0., 1.], [-1., -1.]], &device).expect("w");
        let bias = Tensor::new(&[0f32, 0.5, 0.], &device).expect("b");
        let labels = vec!["a".into(), "b".into(), "c".into()];
        LinearHead::from_tensors(weight, bias, labels, kind).expect("head")
    }

    #[test]
    fn softmax_head_gives_probabilities_and_argmax() {
        let x = Tensor::new(&[[1f32, 0.], [0., 1.]], &Device::Cpu).expect("x");
        let p = head(HeadKind::Softmax).predict(&x).expect("predict");
        assert_eq!(p[0].label, "a");
        assert_eq!(p[1].label, "b");
        for pred in &p {
            let total: f32 = pred.scores.iter().sum();
            assert!((total - 1.0).abs() < 1e-6);
        }
        // logits row 0: [1, 0.5, -1] -> softmax
        let z: f32 = [1f32, 0.5, -1.].iter().map(|v| v.exp()).sum();
        assert!((p[0].score - 1f32.exp() / z).abs() < 1e-6);
    }

    #[test]
    fn decision_head_keeps_raw_scores() {
        let x = Tensor::new(&[[-2f32, -2.]], &Device::Cpu).expect("x");
        let p = head(HeadKind::DecisionScores).predict(&x).expect("predict");
        assert_eq!(p[0].label, "c");
        assert_eq!(p[0].scores, vec![-2.0, -1.5, 4.0]);
    }

    #[test]
    fn wrong_dimension_is_an_error() {
        let x = Tensor::new(&[[1f32, 0., 0.]], &Device::Cpu).expect("x");
        assert!(head(HeadKind::Softmax).predict(&x).is_err());
    }
}
