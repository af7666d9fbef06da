//! BERT-family sentence encoder: tokenizer + candle BERT forward ([`crate::fast_bert::FastBert`],
//! weights pre-transposed at load) + mean pooling + L2 normalisation,
//! i.e. what sentence-transformers computes for `Transformer -> Pooling(mean) -> Normalize`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{read_file, require_file, Error, Result};
use crate::fast_bert::FastBert;

/// Default number of sentences per forward pass (the CPU throughput sweet spot).
pub const DEFAULT_BATCH_SIZE: usize = 32;

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

/// A sentence encoder loaded from a directory holding `config.json`, `tokenizer.json` and
/// `model.safetensors` (plus, optionally, `sentence_bert_config.json` for the truncation length).
pub struct SentenceEncoder {
    model: FastBert,
    tokenizer: Tokenizer,
    device: Device,
    hidden_size: usize,
    max_seq_length: usize,
    batch_size: usize,
    pad_id: u32,
    dir: PathBuf,
    /// Whole words of the tokenizer's vocabulary, built on first use (text descriptors).
    vocabulary: std::sync::OnceLock<std::sync::Arc<std::collections::HashSet<String>>>,
}

impl std::fmt::Debug for SentenceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEncoder")
            .field("dir", &self.dir)
            .field("hidden_size", &self.hidden_size)
            .field("max_seq_length", &self.max_seq_length)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl SentenceEncoder {
    /// Loads the encoder in `dir` onto `device`.
    ///
    /// The tokenizer's own truncation/padding settings are replaced: truncation at
    /// `max_seq_length` from `sentence_bert_config.json` (else `max_position_embeddings`);
    /// padding is done per batch, to the longest sequence of the batch.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with_dtype(dir, device, DType::F32)
    }

    /// Like [`Self::load`], with the weights and activations in `dtype` (`F16`/`BF16` halve
    /// memory and speed up GPUs; pooling and normalisation always run in f32).
    pub fn load_with_dtype(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let config_path = dir.join("config.json");
        let tokenizer_path = dir.join("tokenizer.json");
        let weights_path = dir.join("model.safetensors");
        for path in [&config_path, &tokenizer_path, &weights_path] {
            require_file(path)?;
        }
        let config: Config =
            serde_json::from_slice(&read_file(&config_path)?).map_err(|e| Error::InvalidFile {
                path: config_path.clone(),
                message: format!("not a BERT config.json: {e}"),
            })?;

        let st_config_path = dir.join("sentence_bert_config.json");
        let max_seq_length = if st_config_path.is_file() {
            let st: SentenceBertConfig = serde_json::from_slice(&read_file(&st_config_path)?)
                .map_err(|e| Error::InvalidFile {
                    path: st_config_path.clone(),
                    message: format!("expected {{\"max_seq_length\": N}}: {e}"),
                })?;
            st.max_seq_length
        } else {
            config.max_position_embeddings
        };
        if max_seq_length == 0 || max_seq_length > config.max_position_embeddings {
            return Err(Error::InvalidFile {
                path: st_config_path,
                message: format!(
                    "max_seq_length {max_seq_length} must be in 1..={}",
                    config.max_position_embeddings
                ),
            });
        }

        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| Error::InvalidFile {
                path: tokenizer_path.clone(),
                message: format!("not a Hugging Face tokenizer.json: {e}"),
            })?;
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .unwrap_or(config.pad_token_id as u32);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;

        // SAFETY: the file is memory-mapped read-only; it must not be modified while loaded,
        // which holds for the model cache that scripts/models/fetch.sh writes once.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights_path], dtype, device) }
            .map_err(|e| Error::InvalidFile {
                path: weights_path.clone(),
                message: format!("cannot load safetensors: {e}"),
            })?;
        let model = FastBert::load(vb, &config).map_err(|e| Error::InvalidFile {
            path: weights_path.clone(),
            message: format!("weights do not match config.json (BERT layout expected): {e}"),
        })?;
        Ok(Self {
            model,
            tokenizer,
            device: device.clone(),
            hidden_size: config.hidden_size,
            max_seq_length,
            batch_size: DEFAULT_BATCH_SIZE,
            pad_id,
            dir: dir.to_path_buf(),
            vocabulary: std::sync::OnceLock::new(),
        })
    }

    /// Sets the number of sentences per forward pass (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Embedding dimension (384 for MiniLM).
    pub fn dim(&self) -> usize {
        self.hidden_size
    }

    /// Tokens kept per input; longer inputs are truncated.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Sentences per forward pass.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Encodes `texts` into unit-length embeddings, a `[texts.len(), dim]` f32 tensor on the
    /// encoder's device, in input order. Like sentence-transformers, the inputs are sorted by
    /// token count before they are cut into batches of [`Self::batch_size`], so each batch pads
    /// to a similar length (the results do not depend on it: padding is masked out).
    pub fn encode_tensor<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tensor> {
        if texts.is_empty() {
            return Ok(Tensor::zeros(
                (0, self.hidden_size),
                DType::F32,
                &self.device,
            )?);
        }
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
        let mut parts = Vec::with_capacity(texts.len().div_ceil(self.batch_size));
        for chunk in order.chunks(self.batch_size) {
            parts.push(self.forward(chunk.iter().map(|&i| &encodings[i]))?);
        }
        let sorted = Tensor::cat(&parts, 0)?;
        // Row k of `sorted` is input order[k]; put every input back in its place.
        let mut inverse = vec![0u32; order.len()];
        for (k, &i) in order.iter().enumerate() {
            inverse[i] = k as u32;
        }
        let inverse = Tensor::from_vec(inverse, order.len(), &self.device)?;
        Ok(sorted.index_select(&inverse, 0)?)
    }

    /// Like [`Self::encode_tensor`], copied to plain vectors.
    pub fn encode<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        Ok(self.encode_tensor(texts)?.to_vec2::<f32>()?)
    }

    /// One forward pass over already tokenised (unpadded) inputs: pads to the longest.
    fn forward<'a>(
        &self,
        encodings: impl Iterator<Item = &'a tokenizers::Encoding> + Clone,
    ) -> Result<Tensor> {
        let len = encodings
            .clone()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0);
        let mut ids = Vec::new();
        let mut mask = Vec::new();
        let mut rows = 0;
        for encoding in encodings {
            let n = encoding.get_ids().len();
            ids.extend_from_slice(encoding.get_ids());
            ids.extend(std::iter::repeat_n(self.pad_id, len - n));
            mask.extend_from_slice(encoding.get_attention_mask());
            mask.extend(std::iter::repeat_n(0u32, len - n));
            rows += 1;
        }
        let shape = (rows, len);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let token_type_ids = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &token_type_ids, &mask)?;
        mean_pool_normalize(&hidden.to_dtype(DType::F32)?, &mask)
    }
}

/// Mean over the tokens whose attention mask is 1, then L2 normalisation (norm clamped at 1e-12
/// like `torch.nn.functional.normalize`). `hidden`: `[batch, seq, dim]`, `mask`: `[batch, seq]`.
pub fn mean_pool_normalize(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // [b, s, 1]
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // [b, d]
    let counts = mask.sum(1)?.clamp(1e-9, f64::INFINITY)?; // [b, 1]
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    Ok(mean.broadcast_div(&norm)?)
}

/// `vigil drift --text-column`: the analyzer asks for embeddings through its `TextEncoder`
/// trait (it runs no model itself).
impl vigil_analyzer::cli::TextEncoder for SentenceEncoder {
    fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.dir.display().to_string())
    }

    fn encode(
        &self,
        texts: &[String],
    ) -> std::result::Result<Vec<Vec<f32>>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(SentenceEncoder::encode(self, texts)?)
    }

    fn vocabulary(&self) -> Option<std::sync::Arc<std::collections::HashSet<String>>> {
        let vocab = self.vocabulary.get_or_init(|| {
            let entries = self.tokenizer.get_vocab(false);
            std::sync::Arc::new(vigil_analyzer::text::whole_words(
                entries.keys().map(String::as_str),
            ))
        });
        Some(vocab.clone())
    }
}

/// The encoder for `vigil drift --text-column` and text monitors: `dir`, or all-MiniLM-L6-v2 in the models cache
/// of `scripts/models/fetch.sh`, on CUDA when there is one, else the CPU (logged either way).
pub fn load_text_encoder(dir: Option<&Path>) -> Result<SentenceEncoder> {
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::registry::default_models_dir().join("all-MiniLM-L6-v2"));
    let device = crate::device::select_device(crate::device::DevicePreference::Auto)?;
    tracing::info!(
        encoder = %dir.display(),
        device = %crate::device::device_name(&device),
        "loading the sentence encoder (text drift)"
    );
    SentenceEncoder::load(&dir, &device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_ignores_padding_and_normalises() {
        let device = Device::Cpu;
        // batch 1, 3 tokens, dim 2; the last token is padding and must not count.
        let hidden = Tensor::new(&[[[1f32, 0.], [3., 4.], [100., 100.]]], &device).expect("t");
        let mask = Tensor::new(&[[1u32, 1, 0]], &device).expect("t");
        let out = mean_pool_normalize(&hidden, &mask)
            .expect("pool")
            .to_vec2::<f32>()
            .expect("vec");
        // mean = (2, 2) -> normalised (0.7071, 0.7071)
        assert!((out[0][0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!((out[0][1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }

    #[test]
    fn missing_directory_names_the_fetch_script() {
        let err = SentenceEncoder::load(Path::new("/nonexistent/vigil-model"), &Device::Cpu)
            .expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("scripts/models/fetch.sh"), "{msg}");
        assert!(msg.contains("config.json"), "{msg}");
    }
}
