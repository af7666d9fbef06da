//! BERT encoder forward pass tuned for CPU inference (issue #7), replacing
//! `candle_transformers::models::bert::BertModel` in [`crate::encoder::SentenceEncoder`].
//!
//! Same weights (safetensors, Hugging Face BERT layout) and the same maths, with these changes:
//!
//! * every `Linear` weight is stored once at load time transposed and contiguous (`[in, out]`),
//!   so the gemm sees a column-major left operand and does not re-pack the weight on every call;
//! * query, key and value are one fused `[hidden, 3 * hidden]` matmul, and the `1/√d` attention
//!   scale is folded into the query weight and bias;
//! * activations stay 2-D (`[batch * seq, hidden]`) between layers; only attention is 4-D;
//! * the additive attention mask is built once per batch, not once per layer.
//!
//! The activation is the exact erf GELU (`hidden_act = "gelu"`), as in transformers /
//! sentence-transformers; `gelu_new`-style tanh GELU and ReLU are supported for other configs.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};

/// A linear layer with its weight pre-transposed to `[in, out]` (contiguous).
struct DenseT {
    wt: Tensor,
    b: Tensor,
}

impl DenseT {
    fn load(vb: &VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        let w = vb.get((out_dim, in_dim), "weight")?;
        let b = vb.get(out_dim, "bias")?;
        Self::from_parts(&w, b)
    }

    fn from_parts(w: &Tensor, b: Tensor) -> Result<Self> {
        Ok(Self {
            wt: w.t()?.contiguous()?,
            b: b.contiguous()?,
        })
    }

    /// `x`: `[rows, in]` (contiguous) → `[rows, out]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.wt)?.broadcast_add(&self.b)
    }
}

struct Norm {
    gamma: Tensor,
    beta: Tensor,
    eps: f32,
}

impl Norm {
    fn load(vb: &VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            gamma: vb.get(dim, "weight")?,
            beta: vb.get(dim, "bias")?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.gamma, &self.beta, self.eps)
    }
}

struct Layer {
    qkv: DenseT,
    attn_out: DenseT,
    attn_norm: Norm,
    inter: DenseT,
    out: DenseT,
    out_norm: Norm,
}

/// The BERT encoder (embeddings + transformer layers), returning the last hidden state.
pub struct FastBert {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    act: HiddenAct,
}

impl FastBert {
    /// Loads the weights under `vb` (optionally prefixed `bert.` or `{model_type}.`).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || hidden % heads != 0 {
            candle_core::bail!(
                "hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
            );
        }
        let head_dim = hidden / heads;
        let mut prefixes = vec!["bert".to_string()];
        if let Some(model_type) = &config.model_type {
            prefixes.push(model_type.clone());
        }
        let vb = prefixes
            .iter()
            .find(|p| vb.contains_tensor(&format!("{p}.embeddings.word_embeddings.weight")))
            .map(|p| vb.pp(p.as_str()))
            .unwrap_or(vb);

        let emb = vb.pp("embeddings");
        let word = emb.get((config.vocab_size, hidden), "word_embeddings.weight")?;
        let position = emb.get(
            (config.max_position_embeddings, hidden),
            "position_embeddings.weight",
        )?;
        let token_type = emb.get(
            (config.type_vocab_size, hidden),
            "token_type_embeddings.weight",
        )?;
        let emb_norm = Norm::load(&emb.pp("LayerNorm"), hidden, config.layer_norm_eps)?;

        let scale = 1.0 / (head_dim as f64).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let lvb = vb.pp(format!("encoder.layer.{i}"));
            let att = lvb.pp("attention");
            let sa = att.pp("self");
            let get = |name: &str| -> Result<(Tensor, Tensor)> {
                let p = sa.pp(name);
                Ok((p.get((hidden, hidden), "weight")?, p.get(hidden, "bias")?))
            };
            let (wq, bq) = get("query")?;
            let (wk, bk) = get("key")?;
            let (wv, bv) = get("value")?;
            // Scores are (q/√d)·kᵀ: fold 1/√d into the query projection.
            let wq = (wq * scale)?;
            let bq = (bq * scale)?;
            let w = Tensor::cat(&[&wq, &wk, &wv], 0)?; // [3h, h]
            let b = Tensor::cat(&[&bq, &bk, &bv], 0)?;
            layers.push(Layer {
                qkv: DenseT::from_parts(&w, b)?,
                attn_out: DenseT::load(&att.pp("output.dense"), hidden, hidden)?,
                attn_norm: Norm::load(&att.pp("output.LayerNorm"), hidden, config.layer_norm_eps)?,
                inter: DenseT::load(
                    &lvb.pp("intermediate.dense"),
                    hidden,
                    config.intermediate_size,
                )?,
                out: DenseT::load(&lvb.pp("output.dense"), config.intermediate_size, hidden)?,
                out_norm: Norm::load(&lvb.pp("output.LayerNorm"), hidden, config.layer_norm_eps)?,
            });
        }
        Ok(Self {
            word,
            position,
            token_type,
            emb_norm,
            layers,
            heads,
            head_dim,
            hidden,
            act: config.hidden_act,
        })
    }

    /// `input_ids`, `token_type_ids`, `attention_mask`: `[batch, seq]` (u32); returns the last
    /// hidden state `[batch, seq, hidden]`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        attention_mask: &Tensor,
    ) -> Result<Tensor> {
        let (b, s) = input_ids.dims2()?;
        let h = self.hidden;
        let dtype = self.word.dtype();
        let rows = b * s;

        // Embeddings: word + token type + position, then LayerNorm; [b*s, h].
        let words = self.word.index_select(&input_ids.flatten_all()?, 0)?;
        let types = self
            .token_type
            .index_select(&token_type_ids.flatten_all()?, 0)?;
        let positions = self.position.narrow(0, 0, s)?; // [s, h]
        let x = (words + types)?
            .reshape((b, s, h))?
            .broadcast_add(&positions)?
            .reshape((rows, h))?;
        let mut x = self.emb_norm.forward(&x)?;

        // Additive mask, [b, 1, 1, s]: 0 where attended, finfo.min where padding (as transformers).
        let mask = attention_mask.to_dtype(DType::F32)?;
        let mask = ((mask - 1.0)? * f64::from(f32::MAX))?
            .to_dtype(dtype)?
            .reshape((b, 1, 1, s))?;

        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &mask, b, s)?;
        }
        x.reshape((b, s, h))
    }

    fn layer_forward(
        &self,
        layer: &Layer,
        x: &Tensor,
        mask: &Tensor,
        b: usize,
        s: usize,
    ) -> Result<Tensor> {
        let (nh, d, h) = (self.heads, self.head_dim, self.hidden);
        let qkv = layer.qkv.forward(x)?; // [b*s, 3h]
        let qkv = qkv
            .reshape((b, s, 3, nh, d))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?; // [3, b, nh, s, d]
        let q = qkv.get(0)?;
        let k = qkv.get(1)?;
        let v = qkv.get(2)?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask)?; // [b, nh, s, s]
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs
            .matmul(&v)? // [b, nh, s, d]
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * s, h))?;
        let attn = layer.attn_out.forward(&ctx)?;
        let x = layer.attn_norm.forward(&(attn + x)?)?;

        let inter = layer.inter.forward(&x)?;
        let inter = match self.act {
            HiddenAct::Gelu => inter.gelu_erf()?,
            HiddenAct::GeluApproximate => inter.gelu()?,
            HiddenAct::Relu => inter.relu()?,
        };
        let out = layer.out.forward(&inter)?;
        layer.out_norm.forward(&(out + x)?)
    }
}
