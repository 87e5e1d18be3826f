"""Writes a tiny random-weight llama GGUF for the upstream-model tests (scripts/upstreams.sh setup).

    python make_tiny_gguf.py OUT.gguf

Architecture `llama`, 2 layers, n_embd 64, 4 heads (2 KV heads), n_ff 128, F32 weights drawn from a
fixed seed, so the file is byte-for-byte the same on every run. Its tokenizer is a small SentencePiece-style
(`llama`) vocabulary: <unk> <s> </s>, the 256 byte-fallback tokens <0x00>..<0xFF>, "▁" and the printable
ASCII characters, plus a few multi-character pieces; any UTF-8 text tokenizes (through byte fallback).
A Jinja chat template is embedded, so llama-cpp-python's server formats chat messages with it.
The text it generates is gibberish made of printable ASCII (see the output weights); that is all the tests need: real tokens, real streaming, real grammar-
constrained JSON, real embeddings.
"""
import sys

import numpy as np
import gguf

SEED = 20240611
N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128
N_LAYER = 2
N_CTX_TRAIN = 2048

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def vocabulary():
    tokens, scores, types = [], [], []

    def add(text, score, kind):
        tokens.append(text)
        scores.append(score)
        types.append(kind)

    add("<unk>", 0.0, gguf.TokenType.UNKNOWN)
    add("<s>", 0.0, gguf.TokenType.CONTROL)
    add("</s>", 0.0, gguf.TokenType.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, gguf.TokenType.BYTE)
    add("\u2581", -1.0, gguf.TokenType.NORMAL)
    for c in range(0x21, 0x7F):
        add(chr(c), -2.0, gguf.TokenType.NORMAL)
    # a few merges, so that tokenization is not purely per character
    for i, piece in enumerate(["\u2581t", "he", "\u2581the", "\u2581a", "in", "er", "on", "\u2581o", "ok", "\u2581ok"]):
        add(piece, -3.0 - i * 0.01, gguf.TokenType.NORMAL)
    return tokens, scores, types


def main(out_path):
    rng = np.random.default_rng(SEED)
    tokens, scores, types = vocabulary()
    n_vocab = len(tokens)
    head_dim = N_EMBD // N_HEAD

    w = gguf.GGUFWriter(out_path, "llama")
    w.add_name("freshline-tiny-llama")
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    def t(name, *shape, scale=0.08):
        w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    def ones(name, n):
        w.add_tensor(name, np.ones(n, dtype=np.float32))

    n_embd_kv = head_dim * N_HEAD_KV
    # numpy shape (rows, cols) = GGUF ne reversed. Every token embedding carries +4 in dimension 0, which the
    # residual stream keeps; output.weight reads that dimension with +2 for the printable pieces and -2 for
    # <unk>, <s>, </s> and the byte tokens: sampling picks printable ASCII (and "▁", a space), so the gibberish
    # is valid UTF-8 text and every streamed delta carries a character. </s> is practically never sampled:
    # answers end at max_tokens (finish_reason "length") unless a grammar ends them.
    embd = rng.standard_normal((n_vocab, N_EMBD)).astype(np.float32)
    embd[:, 0] = 4.0
    w.add_tensor("token_embd.weight", embd)
    for i in range(N_LAYER):
        ones(f"blk.{i}.attn_norm.weight", N_EMBD)
        t(f"blk.{i}.attn_q.weight", N_EMBD, N_EMBD)
        t(f"blk.{i}.attn_k.weight", n_embd_kv, N_EMBD)
        t(f"blk.{i}.attn_v.weight", n_embd_kv, N_EMBD)
        t(f"blk.{i}.attn_output.weight", N_EMBD, N_EMBD)
        ones(f"blk.{i}.ffn_norm.weight", N_EMBD)
        t(f"blk.{i}.ffn_gate.weight", N_FF, N_EMBD)
        t(f"blk.{i}.ffn_up.weight", N_FF, N_EMBD)
        t(f"blk.{i}.ffn_down.weight", N_EMBD, N_FF)
    ones("output_norm.weight", N_EMBD)
    out = (rng.standard_normal((n_vocab, N_EMBD)) * 0.5).astype(np.float32)
    out[:, 0] = np.where(np.asarray(types) == gguf.TokenType.NORMAL, 2.0, -2.0)
    w.add_tensor("output.weight", out)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_tiny_gguf.py OUT.gguf")
    main(sys.argv[1])
