"""A tiny random replica of ``openai/whisper-small`` for the transcription tests.

The files mirror the real repository's (config.json, generation_config.json, preprocessor_config.json,
model.safetensors, tokenizer.json, tokenizer_config.json, vocab.json, merges.txt) and its token layout:
a byte-level BPE vocabulary (byte tokens first, in GPT-2's order, so " " is id 220 as in the real one),
then ``<|endoftext|>``, ``<|startoftranscript|>``, one token per language, the task and control tokens,
``<|notimestamps|>`` and the 1501 timestamp tokens ``<|0.00|>`` ... ``<|30.00|>``. Whisper's ``generate``
finds the language, task and no-timestamps tokens through the generation config, and decoding finds them
by name in the tokenizer, so both are built from the one list below and agree with the model's vocab size.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from empathic.models.asr import DEFAULT_ASR_MODEL
from empathic.registry import RepoRef
from replicas import write_hub_repo

WHISPER_SMALL = DEFAULT_ASR_MODEL  # the pinned revision, so that "openai/whisper-small" finds it
TINY_WHISPER_D_MODEL = 32
# The real value is 448 (the decoder's positions); a random model rarely predicts <|endoftext|>, so a
# short limit keeps each test's decode loop short.
TINY_WHISPER_MAX_LENGTH = 24
# A few merges so that the BPE really merges (" the" is one token), as a real vocabulary does.
MERGES = (("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("i", "n"), ("Ġ", "w"), ("o", "r"))
# Byte-level ids of the punctuation Whisper suppresses (its NON_SPEECH_TOKENS_MULTI below 256): the same
# ids here, because the byte tokens come first in the same order.
NON_SPEECH_BYTE_IDS = (1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92, 93)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-character table, which byte-level BPE vocabularies (Whisper's included) use."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))


def _languages() -> list[str]:
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    # whisper-small knows 99 languages; "yue" came with large-v3. The tokenizer's language lookup
    # assumes the language tokens follow <|startoftranscript|> in this dictionary's order.
    return [code for code in LANGUAGES if code != "yue"]


def tiny_whisper_files(d_model: int = TINY_WHISPER_D_MODEL, seed: int = 0, init_std: float = 0.5,
                       special_scale: float = 0.1) -> dict[str, bytes]:
    """The replica's files by name.

    init_std: with Whisper's own 0.02 a tiny random model ignores its input and only ever predicts
        control tokens (an empty text); 0.5 makes the language, the text and its length depend on the
        audio, so the tests see different clips give different results.
    special_scale: shrinks the (tied input/output) embeddings of the control and timestamp tokens so
        that the random model predicts mostly text tokens, as a trained one does.
    """
    from tokenizers import AddedToken
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperTokenizer)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    vocab = {ch: i for i, ch in enumerate(_bytes_to_unicode().values())}
    for left, right in MERGES:
        vocab[left + right] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=dict(vocab), merges=list(MERGES))  # adds <|endoftext|> next
    languages = _languages()
    control = ["<|startoftranscript|>", *(f"<|{code}|>" for code in languages), "<|translate|>",
               "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
    tokenizer.add_tokens([AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=True)
                          for t in control], special_tokens=True)
    # As in the real tokenizer, timestamps are added tokens but not special ones; decode drops them.
    tokenizer.add_tokens([AddedToken("<|%.2f|>" % (i * 0.02), lstrip=False, rstrip=False, normalized=False,
                                     special=False) for i in range(1501)])
    tokenizer.set_prefix_tokens()  # rebuild the post-processor now that the control tokens exist
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in control + ["<|endoftext|>", "<|0.00|>"]}
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    assert ids["<|0.00|>"] == ids["<|notimestamps|>"] + 1, "timestamps must follow <|notimestamps|>"
    vocab_size = len(tokenizer)
    specials_suppressed = [sot, ids["<|startoflm|>"], ids["<|startofprev|>"], ids["<|nospeech|>"]]

    torch.manual_seed(seed)
    config = WhisperConfig(
        vocab_size=vocab_size, num_mel_bins=80, d_model=d_model, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model, max_source_positions=1500, max_target_positions=448,
        decoder_start_token_id=sot, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        suppress_tokens=[*NON_SPEECH_BYTE_IDS, *specials_suppressed], begin_suppress_tokens=[220, eot],
        init_std=init_std,
    )
    # The fields Whisper's generate reads, as in the real generation_config.json (forced_decoder_ids
    # included: it is still in the real file, and generate ignores it once a task is passed).
    generation = GenerationConfig(
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, decoder_start_token_id=sot,
        max_length=TINY_WHISPER_MAX_LENGTH, begin_suppress_tokens=[220, eot],
        suppress_tokens=[*NON_SPEECH_BYTE_IDS, *specials_suppressed],
        forced_decoder_ids=[[1, None], [2, ids["<|transcribe|>"]]],
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": ids[f"<|{code}|>"] for code in languages},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"], prev_sot_token_id=ids["<|startofprev|>"],
        max_initial_timestamp_index=50, return_timestamps=False,
        alignment_heads=[[1, 0], [1, 2]],
    )
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # <|endoftext|> keeps its full size, so some sequences end early
        model.model.decoder.embed_tokens.weight[sot:] *= special_scale
    model.generation_config = generation
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=30,
                                n_fft=400).save_pretrained(folder)
        files = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}
    # The real config.json predates generation configs and still carries generation fields, among them
    # forced_decoder_ids that force English; transformers 5 drops max_length on load but keeps these,
    # and generate ignores them only because a task is passed. transformers 5 refuses to save such a
    # config, so they are added to the file.
    config_json = json.loads(files["config.json"])
    config_json.update(max_length=448, forced_decoder_ids=[
        [1, ids["<|en|>"]], [2, ids["<|transcribe|>"]], [3, ids["<|notimestamps|>"]]])
    files["config.json"] = json.dumps(config_json, indent=2, sort_keys=True).encode()
    # transformers 5 saves only tokenizer.json; the real repository also has the slow files.
    files["vocab.json"] = json.dumps(vocab, ensure_ascii=False).encode()
    files["merges.txt"] = ("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES)).encode()
    files["README.md"] = b"tiny random replica of openai/whisper-small for tests\n"
    return files


def build_tiny_whisper_asr(hub_cache_root: Path, ref: RepoRef = WHISPER_SMALL) -> Path:
    """Writes the replica into the hub cache at ``hub_cache_root``; returns its snapshot folder."""
    return write_hub_repo(hub_cache_root, ref, tiny_whisper_files())
