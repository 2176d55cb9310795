//! Tokenizers for the language format: `byte` (one token per byte, no training), `bpe`
//! (byte-level BPE trained with the `tokenizers` crate on the rendered training corpus and
//! cached as `tokenizer.json`), `file` (a Hugging Face `tokenizer.json`). All of them have an
//! end-of-text token, which also serves as padding and as the token a window starts with.

use super::config::TokenizerConfig;
use crate::fsutil;
use anyhow::{anyhow, Context, Result};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

/// The end-of-text token's text (GPT-2's).
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// Names an existing `tokenizer.json` may use for its end-of-text token, in order of preference.
const END_OF_TEXT_NAMES: [&str; 4] = [END_OF_TEXT, "</s>", "<eos>", "[SEP]"];
/// File name of a trained or cached tokenizer.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

#[derive(Debug, Clone)]
enum Inner {
    Byte,
    Hf(Box<Tokenizer>),
}

/// A text tokenizer with an end-of-text token.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Inner,
    end_of_text: u32,
    vocab_size: usize,
}

impl TextTokenizer {
    /// Bytes 0..=255 are tokens 0..=255; token 256 is end-of-text.
    pub fn byte() -> TextTokenizer {
        TextTokenizer {
            inner: Inner::Byte,
            end_of_text: 256,
            vocab_size: 257,
        }
    }

    fn from_hf(mut tokenizer: Tokenizer) -> TextTokenizer {
        let existing = END_OF_TEXT_NAMES
            .iter()
            .find_map(|n| tokenizer.token_to_id(n));
        let end_of_text = match existing {
            Some(id) => id,
            None => {
                tokenizer.add_special_tokens(&[AddedToken::from(END_OF_TEXT, true)]);
                tokenizer
                    .token_to_id(END_OF_TEXT)
                    .unwrap_or(tokenizer.get_vocab_size(true) as u32)
            }
        };
        // Ids can exceed the counted vocabulary when a file leaves gaps; size the embedding
        // for the largest id.
        let vocab_size = tokenizer
            .get_vocab(true)
            .values()
            .map(|&id| id as usize + 1)
            .max()
            .unwrap_or(0)
            .max(end_of_text as usize + 1);
        TextTokenizer {
            inner: Inner::Hf(Box::new(tokenizer)),
            end_of_text,
            vocab_size,
        }
    }

    /// Loads a Hugging Face `tokenizer.json`; adds `<|endoftext|>` if it has no end-of-text
    /// token of a known name.
    pub fn from_file(path: &Path) -> Result<TextTokenizer> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading tokenizer {}", path.display()))?;
        let tokenizer = Tokenizer::from_str(&text)
            .map_err(|e| anyhow!("loading tokenizer {}: {e}", path.display()))?;
        Ok(TextTokenizer::from_hf(tokenizer))
    }

    /// Trains a byte-level BPE with `vocab_size` tokens (including the 256 byte tokens and
    /// end-of-text) on `corpus`. Pieces are pre-split like GPT-2 and never merged across
    /// corpus items, so train on the same segments you will encode.
    pub fn train_bpe<I, S>(corpus: I, vocab_size: usize) -> Result<TextTokenizer>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        let byte_level = ByteLevel::new(false, false, true);
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut tokenizer = TokenizerBuilder::<
            BPE,
            NormalizerWrapper,
            PreTokenizerWrapper,
            PostProcessorWrapper,
            DecoderWrapper,
        >::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(byte_level.into()))
        .with_post_processor(Some(byte_level.into()))
        .with_decoder(Some(byte_level.into()))
        .build()
        .map_err(|e| anyhow!("building a BPE tokenizer: {e}"))?;
        tokenizer
            .train(&mut trainer, corpus)
            .map_err(|e| anyhow!("training the BPE tokenizer: {e}"))?;
        Ok(TextTokenizer::from_hf(Tokenizer::from(tokenizer)))
    }

    /// The tokenizer a format asks for. `bpe` is loaded from `cache_dir/tokenizer.json` if
    /// present, else trained on `corpus()` and saved there (atomically); `cache_dir` should
    /// be specific to the task data and the format (see [`bpe_cache_dir`]).
    pub fn for_config<C, S>(
        config: &TokenizerConfig,
        cache_dir: &Path,
        corpus: impl FnOnce() -> Result<C>,
    ) -> Result<TextTokenizer>
    where
        C: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        match config {
            TokenizerConfig::Byte => Ok(TextTokenizer::byte()),
            TokenizerConfig::File { path } => TextTokenizer::from_file(path),
            TokenizerConfig::Bpe { vocab_size } => {
                let path = cache_dir.join(TOKENIZER_FILE);
                if path.exists() {
                    return TextTokenizer::from_file(&path);
                }
                if *vocab_size <= 257 {
                    anyhow::bail!(
                        "format.tokenizer.vocab_size is {vocab_size}: a byte-level BPE needs more \
                         than 257 (256 bytes + end-of-text)"
                    );
                }
                let tokenizer = TextTokenizer::train_bpe(corpus()?, *vocab_size)?;
                tokenizer.save(&path)?;
                Ok(tokenizer)
            }
        }
    }

    /// Writes the tokenizer as a Hugging Face `tokenizer.json` (not for `byte`).
    pub fn save(&self, path: &Path) -> Result<()> {
        match &self.inner {
            Inner::Byte => anyhow::bail!("the byte tokenizer has no tokenizer.json"),
            Inner::Hf(t) => {
                let json = t
                    .to_string(false)
                    .map_err(|e| anyhow!("serialising the tokenizer: {e}"))?;
                fsutil::write_atomic(path, json.as_bytes())
            }
        }
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match &self.inner {
            Inner::Byte => Ok(text.bytes().map(u32::from).collect()),
            Inner::Hf(t) => t
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| anyhow!("tokenising {text:?}: {e}")),
        }
    }

    /// Decodes ids to text (special tokens dropped; invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match &self.inner {
            Inner::Byte => {
                let bytes: Vec<u8> = ids
                    .iter()
                    .filter_map(|&i| u8::try_from(i).ok())
                    .collect();
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
            Inner::Hf(t) => t
                .decode(ids, true)
                .map_err(|e| anyhow!("decoding {} tokens: {e}", ids.len())),
        }
    }

    /// Number of embedding rows a model needs (largest id + 1).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// End-of-text: starts every window and pads short ones.
    pub fn end_of_text_id(&self) -> u32 {
        self.end_of_text
    }

    pub fn pad_id(&self) -> u32 {
        self.end_of_text
    }
}

/// `<data cache dir>/bpe-<format name>-<12 hex>`: the hash covers everything that changes the
/// training corpus or the vocabulary (template, separator, precision, vocab size), so two
/// formats never share a trained tokenizer by accident.
pub fn bpe_cache_dir(data_cache_dir: &Path, format: &super::config::LanguageFormatConfig) -> PathBuf {
    use sha2::{Digest, Sha256};
    let key = serde_json::json!({
        "step": format.step,
        "episode_separator": format.episode_separator,
        "precision": format.precision,
        "tokenizer": format.tokenizer,
    });
    let digest = Sha256::digest(key.to_string().as_bytes());
    data_cache_dir.join(format!("bpe-{}-{}", format.name, &hex::encode(digest)[..12]))
}
