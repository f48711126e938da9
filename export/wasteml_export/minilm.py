"""all-MiniLM-L6-v2 as a plain torch module: BERT encoder + mean pooling + L2 normalisation.

The forward pass is written here from the checkpoint's own ``config.json`` (BERT, 6 layers,
hidden 384, 12 heads, intermediate 1536, GELU (erf), LayerNorm eps 1e-12, absolute positions)
instead of pulling in ``transformers``; the state dict keys are the Hugging Face ``BertModel``
names, so ``load_state_dict(strict=True)`` proves every weight found its place.

Sources of the arithmetic:

- BERT: Devlin et al. 2019 (arXiv:1810.04805) and the reference ``modeling.py`` of
  google-research/bert: post-LayerNorm residual blocks, scaled dot-product attention with an
  additive mask of ``-10000.0`` on padded keys, erf GELU.
- Pooling: sentence-transformers ``Pooling(pooling_mode_mean_tokens=True)`` as configured in the
  checkpoint's ``1_Pooling/config.json``: the mean of the token embeddings weighted by the
  attention mask, the count clamped at 1e-9; then ``Normalize`` (``F.normalize``, p=2, eps 1e-12).

The model takes ``input_ids`` and ``attention_mask`` (int64 ``[batch, seq]``, seq <= 512, the
position table size) and returns ``embedding`` (float32 ``[batch, 384]``, unit L2 norm). Token
type ids are always 0 (single-segment input), so the type embedding is added as a constant.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

#: The additive attention-mask value for padded keys, as in the original BERT code
#: (google-research/bert ``modeling.py``: ``adder = (1.0 - mask) * -10000.0``). It is finite so
#: that FP16 engines (TensorRT) do not produce ``inf - inf``; exp(-10000) underflows to 0 in fp32.
MASK_BIAS = -10000.0


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        # [batch, seq, hidden] -> [batch, heads, seq, head_dim]
        return x.reshape(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        q = self._split(self.query(x))
        k = self._split(self.key(x))
        v = self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask_bias
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).transpose(1, 2)
        return ctx.reshape(x.shape[0], x.shape[1], self.heads * self.head_dim)


class _AttentionOutput(nn.Module):
    def __init__(self, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)  # noqa: N815 (checkpoint key name)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(h) + residual)


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float) -> None:
        super().__init__()
        self.self = _SelfAttention(hidden, heads)
        self.output = _AttentionOutput(hidden, eps)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, mask_bias), x)


class _Intermediate(nn.Module):
    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, intermediate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(x))  # erf GELU, config "hidden_act": "gelu"


class _Output(nn.Module):
    def __init__(self, hidden: int, intermediate: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(intermediate, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)  # noqa: N815 (checkpoint key name)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(h) + residual)


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float) -> None:
        super().__init__()
        self.attention = _Attention(hidden, heads, eps)
        self.intermediate = _Intermediate(hidden, intermediate)
        self.output = _Output(hidden, intermediate, eps)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        a = self.attention(x, mask_bias)
        return self.output(self.intermediate(a), a)


class _Encoder(nn.Module):
    def __init__(self, layers: int, hidden: int, heads: int, intermediate: int, eps: float):
        super().__init__()
        self.layer = nn.ModuleList(
            [_Layer(hidden, heads, intermediate, eps) for _ in range(layers)]
        )

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, mask_bias)
        return x


class _Embeddings(nn.Module):
    def __init__(self, vocab: int, hidden: int, positions: int, types: int, eps: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(positions, hidden)
        self.token_type_embeddings = nn.Embedding(types, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)  # noqa: N815 (checkpoint key name)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        seq = input_ids.shape[1]
        pos = self.position_embeddings.weight[:seq]  # [seq, hidden], positions 0..seq-1
        x = self.word_embeddings(input_ids) + pos + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class SentenceEncoder(nn.Module):
    """BERT encoder with attention-mask mean pooling and L2 normalisation.

    Args:
        config: the checkpoint's ``config.json`` as a dict (keys ``vocab_size``, ``hidden_size``,
            ``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``,
            ``max_position_embeddings``, ``type_vocab_size``, ``layer_norm_eps``, ``hidden_act``).

    Raises:
        ValueError: ``config`` is not a BERT with absolute positions and erf GELU.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ValueError(f"config: expected a BERT with erf GELU, got {config!r}")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("config.position_embedding_type: only 'absolute' is supported")
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        if hidden % heads:
            raise ValueError("config: hidden_size must be a multiple of num_attention_heads")
        eps = float(config["layer_norm_eps"])
        self.hidden_size = hidden
        self.embeddings = _Embeddings(
            int(config["vocab_size"]),
            hidden,
            int(config["max_position_embeddings"]),
            int(config["type_vocab_size"]),
            eps,
        )
        self.encoder = _Encoder(
            int(config["num_hidden_layers"]), hidden, heads, int(config["intermediate_size"]), eps
        )

    def load_checkpoint(self, state: dict[str, torch.Tensor]) -> None:
        """Load a Hugging Face ``BertModel`` state dict (e.g. from ``model.safetensors``).

        The pooler (``pooler.*``, unused by sentence-transformers' mean pooling) and the
        ``embeddings.position_ids`` buffer are dropped; every other key must match exactly.

        Raises:
            RuntimeError: a weight is missing, unexpected, or has the wrong shape.
        """
        kept = {
            k: v
            for k, v in state.items()
            if not k.startswith("pooler.") and k != "embeddings.position_ids"
        }
        self.load_state_dict(kept, strict=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Embed a batch of token sequences.

        Args:
            input_ids: int64 ``[batch, seq]`` WordPiece ids (``[CLS] ... [SEP]`` then padding).
            attention_mask: int64 ``[batch, seq]``, 1 for real tokens, 0 for padding.

        Returns:
            float32 ``[batch, hidden]`` sentence embeddings with unit L2 norm (a row whose mask is
            all zeros yields a zero vector).
        """
        x = self.embeddings(input_ids)
        mask = attention_mask.to(x.dtype)
        mask_bias = (1.0 - mask)[:, None, None, :] * MASK_BIAS  # [batch, 1, 1, seq]
        x = self.encoder(x, mask_bias)
        weights = mask.unsqueeze(-1)  # [batch, seq, 1]
        summed = (x * weights).sum(dim=1)
        counts = weights.sum(dim=1).clamp(min=1e-9)
        mean = summed / counts
        norm = mean.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12)
        return mean / norm
