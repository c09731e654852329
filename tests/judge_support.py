"""Judges for the judged-benchmark tests.

- ``ScriptedJudge``: a tiny OpenAI-compatible HTTP server on 127.0.0.1 that answers each chat request
  from a script chosen by the request's content (requests run concurrently, so order cannot be used),
  records every request, and can answer 429 before succeeding.
- ``build_rule_judge``: a real transformers model whose greedy output is fixed by rules on the last word
  of the prompt (a word-level tokenizer and a bigram "network": identity embeddings, zeroed blocks, a
  hand-set lm_head), so ``transformers serve`` can serve a deterministic judge on a CPU in milliseconds."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Reply:
    content: str = ""
    status: int = 200
    logprobs: dict[str, float] | None = None  # token -> logprob of the first output token
    body: str | None = None  # raw error body


@dataclass
class ScriptedJudge:
    """``script(user_message) -> list of Replies``: the n-th request with that message gets the n-th
    reply (the last one repeats)."""

    script: Callable[[str], list[Reply]]
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def reply_for(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        with self.lock:
            seen = sum(
                1
                for r in self.requests
                if next(m["content"] for m in r["messages"] if m["role"] == "user") == user
            )
            self.requests.append(body)
            self.headers.append(headers)
        replies = self.script(user)
        return replies[min(seen, len(replies) - 1)]


def _completion(reply: Reply) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "finish_reason": "stop",
        "message": {"role": "assistant", "content": reply.content},
    }
    if reply.logprobs is not None:
        top = [{"token": t, "logprob": lp} for t, lp in reply.logprobs.items()]
        choice["logprobs"] = {
            "content": [{"token": top[0]["token"], "logprob": top[0]["logprob"], "top_logprobs": top}]
        }
    return {"id": "x", "object": "chat.completion", "choices": [choice], "model": "scripted"}


@contextmanager
def serve_scripted_judge(judge: ScriptedJudge) -> Iterator[ScriptedJudge]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reply = judge.reply_for(body, dict(self.headers))
            payload = (reply.body or "{}") if reply.status != 200 else json.dumps(_completion(reply))
            data = payload.encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if reply.status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    judge.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield judge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def build_rule_judge(output_dir: Path, rules: dict[str, str], default: str) -> Path:
    """A model that answers ``rules[last word of the prompt]`` (else ``default``), then stops."""
    import torch
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>", "<unk>", *sorted(rules)]
    vocab = {w: i for i, w in enumerate(words)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    outputs = sorted(set(rules.values()) | {default})
    tokenizer.add_tokens([AddedToken(o, special=False, normalized=False) for o in outputs])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    size = len(fast)
    hidden = (size + 7) // 8 * 8  # RoPE needs an even head size
    config = LlamaConfig(
        vocab_size=size,
        hidden_size=hidden,
        intermediate_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        max_position_embeddings=8192,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()  # blocks add nothing: the last position's state is its token's embedding
        model.model.embed_tokens.weight.copy_(torch.eye(size, hidden))
        model.model.norm.weight.fill_(1.0)
        following = dict.fromkeys(range(size), fast.convert_tokens_to_ids(default))
        following.update({vocab[word]: fast.convert_tokens_to_ids(out) for word, out in rules.items()})
        following.update({fast.convert_tokens_to_ids(out): fast.eos_token_id for out in outputs})
        for token, successor in following.items():
            model.lm_head.weight[successor, token] = 10.0
    model.save_pretrained(output_dir)
    fast.save_pretrained(output_dir)
    return output_dir
