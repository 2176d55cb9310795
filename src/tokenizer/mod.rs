//! Tokenizers, shared by the language formats, the RLHF sources and the TRLx reader: `byte` (one token per byte, no training), `bpe`
//! (byte-level BPE trained with the `tokenizers` crate on the rendered training corpus and
//! cached as `tokenizer.json`), `file` (a Hugging Face `tokenizer.json`). All of them have an
//! end-of-text token, which also serves as padding and as the token a window starts with.

pub mod hf;

use crate::fsutil;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
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

/// The `format.tokenizer` section: which tokenizer turns rendered text into ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenizerConfig {
    /// One token per byte (plus special tokens): needs no training, never out of vocabulary.
    Byte,
    /// Byte-level BPE trained on the rendered corpus and cached beside the data.
    Bpe { vocab_size: usize },
    /// A Hugging Face `tokenizer.json`.
    File { path: PathBuf },
}

/// Names an existing `tokenizer.json` may use for its end-of-text token, in order of preference.
const END_OF_TEXT_NAMES: [&str; 4] = [END_OF_TEXT, "</s>", "<eos>", "[SEP]"];
/// The unknown-word token of [`TextTokenizer::word_level`].
const UNKNOWN: &str = "<unk>";
/// File name of a trained or cached tokenizer.
pub use crate::runs::layout::TOKENIZER_FILE;

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

    /// A word-level tokenizer over `words` (split on whitespace; decoding joins with single
    /// spaces), plus `<unk>` and end-of-text. Sequences are several times shorter than with
    /// bytes, which is what makes PPO on a small vocabulary (the `sentiment_rlhf` stories)
    /// cheap. Round-trips any single-spaced text made of `words`.
    pub fn word_level(words: &[String]) -> Result<TextTokenizer> {
        let mut vocab = serde_json::Map::new();
        for (i, w) in words.iter().enumerate() {
            if w.is_empty() || w.contains(char::is_whitespace) {
                anyhow::bail!("word_level: {w:?} is not a single word");
            }
            if vocab.insert(w.clone(), i.into()).is_some() {
                anyhow::bail!("word_level: the word list has `{w}` twice");
            }
        }
        vocab.insert(UNKNOWN.to_string(), words.len().into());
        // Built through its tokenizer.json form: the `WordLevel` builder wants a map type
        // from a crate adlab does not depend on.
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
            "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNKNOWN},
        });
        let tokenizer = Tokenizer::from_str(&json.to_string())
            .map_err(|e| anyhow!("building a word-level tokenizer: {e}"))?;
        Ok(TextTokenizer::from_hf(tokenizer))
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
    /// be specific to the task data and the format (see `formats::config::bpe_cache_dir`).
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

    /// Writes the tokenizer as a Hugging Face `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        match self.to_json()? {
            Some(json) => fsutil::write_atomic(path, &json),
            None => anyhow::bail!("the tokenizer has no tokenizer.json form"),
        }
    }

    /// The Hugging Face `tokenizer.json` text (for `byte`, an equivalent byte-level BPE
    /// without merges: adlab itself never needs the file, Hugging Face does).
    pub fn to_json(&self) -> Result<Option<Vec<u8>>> {
        match &self.inner {
            Inner::Byte => Ok(Some(hf::byte_tokenizer_json()?.into_bytes())),
            Inner::Hf(t) => {
                let json = t
                    .to_string(false)
                    .map_err(|e| anyhow!("serialising the tokenizer: {e}"))?;
                Ok(Some(json.into_bytes()))
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
                let bytes: Vec<u8> = ids.iter().filter_map(|&i| u8::try_from(i).ok()).collect();
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

    /// The text of one token (for the byte tokenizer, the byte as a char), if it exists.
    pub fn token_text(&self, id: u32) -> Option<String> {
        match &self.inner {
            Inner::Byte if id == self.end_of_text => Some(END_OF_TEXT.to_string()),
            Inner::Byte => u8::try_from(id).ok().map(|b| char::from(b).to_string()),
            Inner::Hf(t) => t.id_to_token(id),
        }
    }
}

/// The tokenizer a causal-LM run was trained with: the checkpoint's `tokenizer.json`
/// (written for BPE and file tokenizers), else the byte tokenizer.
pub fn run_tokenizer(config: &TokenizerConfig, checkpoint: &Path) -> Result<TextTokenizer> {
    let saved = checkpoint.join(TOKENIZER_FILE);
    match config {
        TokenizerConfig::Byte => Ok(TextTokenizer::byte()),
        _ if saved.is_file() => TextTokenizer::from_file(&saved),
        _ => bail!(
            "{} is missing: the run's tokenizer cannot be restored",
            saved.display()
        ),
    }
}

/// `<data cache dir>/bpe-<name>-<12 hex of key>`, for any format whose text `key` fixes.
pub fn bpe_cache_dir_for(data_cache_dir: &Path, name: &str, key: &serde_json::Value) -> PathBuf {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.to_string().as_bytes());
    data_cache_dir.join(format!("bpe-{name}-{}", &hex::encode(digest)[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS: [&str; 6] = ["(4,4)", " ", "up", " ", "0", "\n###\n"];

    fn corpus() -> impl Iterator<Item = String> + Send {
        (0..200).flat_map(|i| {
            CORPUS.iter().map(move |s| {
                if i % 7 == 0 {
                    format!("({},{})", i % 9, i % 5)
                } else {
                    s.to_string()
                }
            })
        })
    }

    #[test]
    fn byte_tokens_round_trip_any_text() {
        let t = TextTokenizer::byte();
        let text = "(4,4) up 0\n###\né";
        let ids = t.encode(text).unwrap();
        assert_eq!(ids.len(), text.len());
        assert_eq!(t.decode(&ids).unwrap(), text);
        assert_eq!((t.vocab_size(), t.end_of_text_id()), (257, 256));
        // Special tokens decode to nothing.
        assert_eq!(t.decode(&[b'a'.into(), 256]).unwrap(), "a");
    }

    #[test]
    fn bpe_training_is_deterministic_round_trips_and_is_cached() {
        let a = TextTokenizer::train_bpe(corpus(), 300).unwrap();
        let b = TextTokenizer::train_bpe(corpus(), 300).unwrap();
        let json = |t: &TextTokenizer| match &t.inner {
            Inner::Hf(h) => h.to_string(false).unwrap(),
            Inner::Byte => unreachable!(),
        };
        assert_eq!(json(&a), json(&b));
        let text = "(4,4) up 0\n###\n(1,2) left 1\n";
        let ids = a.encode(text).unwrap();
        assert!(
            ids.len() < text.len(),
            "merges shorten the corpus' own text"
        );
        assert_eq!(a.decode(&ids).unwrap(), text);
        // GPT-2's pre-split keeps digits and punctuation apart; runs of either still merge.
        assert_eq!(a.encode("###").unwrap().len(), 1);
        assert_eq!(a.encode("up").unwrap().len(), 1);
        assert!(a.vocab_size() <= 300 && a.vocab_size() > 257);
        assert_eq!(
            a.token_text(a.end_of_text_id()),
            Some(END_OF_TEXT.to_string())
        );

        let dir = tempfile::tempdir().unwrap();
        let cfg = TokenizerConfig::Bpe { vocab_size: 300 };
        let trained = TextTokenizer::for_config(&cfg, dir.path(), || Ok(corpus())).unwrap();
        assert!(dir.path().join(TOKENIZER_FILE).exists());
        // The second call must load the file, not train (the corpus would fail).
        let loaded = TextTokenizer::for_config(&cfg, dir.path(), || {
            anyhow::bail!("trained again");
            #[allow(unreachable_code)]
            Ok(corpus())
        })
        .unwrap();
        assert_eq!(loaded.encode(text).unwrap(), trained.encode(text).unwrap());
        assert_eq!(loaded.end_of_text_id(), trained.end_of_text_id());
    }

    #[test]
    fn word_level_round_trips_single_spaced_text() {
        let words: Vec<String> = ["the", "old", "fisherman", "smiled"]
            .iter()
            .map(|w| w.to_string())
            .collect();
        let t = TextTokenizer::word_level(&words).unwrap();
        let text = "the old fisherman smiled the";
        let ids = t.encode(text).unwrap();
        assert_eq!(ids, [0, 1, 2, 3, 0]);
        assert_eq!(t.decode(&ids).unwrap(), text);
        let eot = t.end_of_text_id();
        assert_eq!((eot, t.vocab_size()), (5, 6));
        assert_eq!(t.decode(&[eot, 1, 3, eot]).unwrap(), "old smiled");
        assert_eq!(t.encode("old dog").unwrap(), [1, 4]);
        assert!(t.to_json().unwrap().is_some());
        assert!(TextTokenizer::word_level(&[words[0].clone(), words[0].clone()]).is_err());
    }

    #[test]
    fn tokenizer_json_files_load_and_gain_an_end_of_text_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
            "normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,
            "decoder":null,"model":{"type":"WordLevel","vocab":{"up":0,"down":1,"[UNK]":2},
            "unk_token":"[UNK]"}}"#;
        std::fs::write(&path, json).unwrap();
        let cfg = TokenizerConfig::File { path: path.clone() };
        let t = TextTokenizer::for_config(&cfg, dir.path(), || Ok(std::iter::empty::<String>()))
            .unwrap();
        assert_eq!(t.encode("down up").unwrap(), [1, 0]);
        assert_eq!((t.end_of_text_id(), t.vocab_size()), (3, 4));

        std::fs::write(&path, "{not json").unwrap();
        let err = TextTokenizer::from_file(&path).unwrap_err();
        assert!(format!("{err:#}").contains("tokenizer.json"), "{err:#}");
    }
}
