//! What CSM is asked to say: a script of turns (each optionally with its own
//! speaker), tokenised the way Sesame's generator does it
//! (`<|begin_of_text|>[speaker]text<|end_of_text|>`) with the model's own
//! `tokenizer.json`.

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use crate::errors::ModelError;

/// Speaker ids CSM takes. Sesame's prompts number speakers from 0; the
/// published model was trained on conversations of a few speakers, so a
/// larger id is far more likely a typo than a voice.
pub const MAX_SPEAKER: u32 = 9;

/// One line of a script: what to say, and who says it (`None`: the speaker knob).
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    pub speaker: Option<u32>,
    pub text: String,
}

/// An earlier turn given as context: its text, speaker and Mimi codes.
#[derive(Clone, Debug, PartialEq)]
pub struct ContextTurn {
    pub speaker: u32,
    pub text: String,
    /// One frame of `num_codebooks` codes per 80 ms.
    pub codes: Vec<Vec<u32>>,
}

/// Everything a CSM stream will say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Script {
    pub context: Vec<ContextTurn>,
    pub turns: Vec<Turn>,
}

fn check_speaker(s: u32) -> Result<u32, String> {
    if s > MAX_SPEAKER {
        Err(format!(
            "unknown speaker id {s}: CSM speakers are 0–{MAX_SPEAKER}"
        ))
    } else {
        Ok(s)
    }
}

impl Script {
    /// A script: every non-blank line is a turn; a line may start with
    /// `[N]` to give its speaker (else the speaker knob decides).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut turns = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (speaker, text) = match line.strip_prefix('[').and_then(|r| r.split_once(']')) {
                Some((n, rest)) => {
                    let n: u32 = n.trim().parse().map_err(|_| {
                        format!("line {}: `[{n}]` is not a speaker id (expected `[0]`–`[{MAX_SPEAKER}]`)", i + 1)
                    })?;
                    let n = check_speaker(n).map_err(|e| format!("line {}: {e}", i + 1))?;
                    (Some(n), rest.trim())
                }
                None => (None, line),
            };
            if text.is_empty() {
                return Err(format!("line {}: a speaker tag with no text", i + 1));
            }
            turns.push(Turn {
                speaker,
                text: text.to_string(),
            });
        }
        if turns.is_empty() {
            return Err("no text to speak (the text is empty or only blank lines)".into());
        }
        Ok(Self {
            context: Vec::new(),
            turns,
        })
    }
}

/// The model's tokenizer with Sesame's turn template.
#[derive(Clone)]
pub struct CsmTokenizer {
    tok: Tokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
}

impl CsmTokenizer {
    /// Loads `tokenizer.json`, refusing one whose ids do not fit the model's
    /// text vocabulary (a tokenizer from another model).
    pub fn load(file: &Path, text_vocab: usize) -> Result<Self, ModelError> {
        let tok = Tokenizer::from_file(file).map_err(|e| ModelError::Corrupt {
            file: file.into(),
            format: "tokenizer.json",
            detail: e.to_string(),
        })?;
        let max_id = tok.get_vocab(true).into_values().max().unwrap_or(0) as usize;
        if max_id >= text_vocab {
            return Err(ModelError::config(
                file,
                format!(
                    "token ids go up to {max_id}, but the model's text vocabulary has {text_vocab} \
                     entries (config.json `text_vocab_size`): this tokenizer belongs to another model"
                ),
            ));
        }
        let bos = tok.token_to_id("<|begin_of_text|>");
        let eos = tok.token_to_id("<|end_of_text|>");
        Ok(Self { tok, bos, eos })
    }

    /// Tokens of one turn: `<|begin_of_text|>[speaker]text<|end_of_text|>`.
    pub fn turn(&self, speaker: u32, text: &str) -> Result<Vec<u32>, String> {
        let enc = self
            .tok
            .encode(format!("[{speaker}]{text}"), false)
            .map_err(|e| format!("cannot tokenise `{text}`: {e}"))?;
        let mut ids = Vec::with_capacity(enc.len() + 2);
        ids.extend(self.bos);
        ids.extend_from_slice(enc.get_ids());
        ids.extend(self.eos);
        Ok(ids)
    }
}

/// Where the text files of a model folder are.
pub fn tokenizer_file(dir: &Path) -> PathBuf {
    dir.join("tokenizer.json")
}
