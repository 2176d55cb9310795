"""PyTorch eager twin of the Rust training-step benchmark `benches/train.rs`.

Builds the same models as adlab at the reference CPU sizes (d_model 128, 4 layers, 4 heads,
d_ff 512, batch 16) and times full training steps the same way, so the two tables can be
compared row for row:

* `causal_lm {gelu, relu, gelu_new}`: GPT-2 (token + learned position embeddings, pre-norm
  blocks, final LayerNorm, LM head tied to the token embedding), vocabulary 260, 64 tokens,
  no dropout, evaluation-mode forward (the Rust bench passes no dropout RNG);
* `rl_heads sar dropout {0.1, 0.0}`: the Algorithm-Distillation model, layout `sar` (tokens
  s_t, a_t, r_t; 64 steps = 192 tokens), a table of 81 states, 5 actions, reward classes
  {0, 1}, one learned position per token, exact (erf) GELU; the s_t hidden state feeds the
  action head, a_t the reward and logprob heads, r_t the next-state head; losses weighted
  1, 1, 1, 1 (cross-entropy for action / reward / next state, MSE for logprob).

Each step is AdamW (lr 3e-4, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on weight
matrices only: not embeddings, biases or norm gains, as adlab's optimizer decides) after
global-norm clipping at 1.0. Columns match the Rust table: median step, fastest step, process
CPU time per timed step, medians of forward (incl. loss) / backward / optimizer (clipping +
AdamW + zero_grad), tokens per second from the median, and peak resident memory (VmHWM,
cumulative over the rows above; it includes the Python interpreter and torch itself).

Run (needs only torch):

    taskset -c 0 python benches/torch_twin.py                  # all rows, 1 thread
    taskset -c 0 python benches/torch_twin.py --quick "rl_heads sar dropout 0.1"
    python benches/torch_twin.py --threads 2 causal_lm          # substring filters, as in Rust

`--attn math` replaces `scaled_dot_product_attention` by explicit masked softmax (Hugging Face
GPT-2's eager path).
"""

import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH, LM_CONTEXT, VOCAB, RL_STEPS = 16, 64, 260, 64
D_MODEL, N_LAYERS, N_HEADS, D_FF = 128, 4, 4, 512
INIT_STD, LN_EPS = 0.02, 1e-5
RUST_PARAMS = {"causal_lm": 834_816, "rl_heads": 840_665}
ACTIVATIONS = {  # Rust row name (Hugging Face activation name) -> function
    "gelu": F.gelu,
    "relu": F.relu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
}
ATTN = "sdpa"


def dropout(x, p, training):
    """Identity unless training with p > 0 (adlab draws no mask at p = 0 either)."""
    return F.dropout(x, p, True) if training and p > 0 else x


def linear(d_in, d_out, std):
    layer = nn.Linear(d_in, d_out)
    nn.init.normal_(layer.weight, 0.0, std)
    nn.init.zeros_(layer.bias)
    return layer


def embedding(n, d):
    table = nn.Embedding(n, d)
    nn.init.normal_(table.weight, 0.0, INIT_STD)
    return table


class Block(nn.Module):
    """Pre-norm GPT-2 block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`."""

    def __init__(self, act, p):
        super().__init__()
        resid_std = INIT_STD / math.sqrt(2 * N_LAYERS)  # GPT-2's scaled residual init
        self.ln_1 = nn.LayerNorm(D_MODEL, eps=LN_EPS)
        self.attn = nn.ModuleDict({"c_attn": linear(D_MODEL, 3 * D_MODEL, INIT_STD),
                                   "c_proj": linear(D_MODEL, D_MODEL, resid_std)})
        self.ln_2 = nn.LayerNorm(D_MODEL, eps=LN_EPS)
        self.mlp = nn.ModuleDict({"c_fc": linear(D_MODEL, D_FF, INIT_STD),
                                  "c_proj": linear(D_FF, D_MODEL, resid_std)})
        self.act, self.p = act, p

    def attention(self, x):
        b, t, d = x.shape
        q, k, v = (
            z.view(b, t, N_HEADS, d // N_HEADS).transpose(1, 2)
            for z in self.attn.c_attn(x).split(d, dim=2)
        )
        if ATTN == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // N_HEADS)
            causal = torch.ones(t, t, dtype=torch.bool).triu(1)
            y = scores.masked_fill(causal, float("-inf")).softmax(-1) @ v
        y = y.transpose(1, 2).reshape(b, t, d)
        return dropout(self.attn.c_proj(y), self.p, self.training)

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        mlp = self.mlp.c_proj(self.act(self.mlp.c_fc(self.ln_2(x))))
        return x + dropout(mlp, self.p, self.training)


class Trunk(nn.Module):
    """Blocks `h.{i}` and the final LayerNorm `ln_f` (names as in adlab / Hugging Face)."""

    def __init__(self, act, p):
        super().__init__()
        self.h = nn.ModuleList(Block(act, p) for _ in range(N_LAYERS))
        self.ln_f = nn.LayerNorm(D_MODEL, eps=LN_EPS)

    def forward(self, x):
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class CausalLm(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.transformer = Trunk(act, 0.0)
        self.transformer.wte = embedding(VOCAB, D_MODEL)
        self.transformer.wpe = embedding(LM_CONTEXT, D_MODEL)

    def forward(self, ids):
        t = self.transformer
        x = t.wte(ids) + t.wpe(torch.arange(ids.shape[1]))
        return F.linear(t(x), t.wte.weight)  # tied LM head


class RlHeadsSar(nn.Module):
    def __init__(self, p, n_states=81, n_actions=5, n_rewards=2):
        super().__init__()
        self.embed = nn.ModuleDict({
            "state": embedding(n_states, D_MODEL),
            "action": embedding(n_actions, D_MODEL),
            "reward": embedding(n_rewards, D_MODEL),
            "position": embedding(3 * RL_STEPS, D_MODEL),  # per token
        })
        self.transformer = Trunk(F.gelu, p)
        self.head = nn.ModuleDict({
            "action": linear(D_MODEL, n_actions, INIT_STD),
            "reward": linear(D_MODEL, n_rewards, INIT_STD),
            "next_state": linear(D_MODEL, n_states, INIT_STD),
            "logprob": linear(D_MODEL, 1, INIT_STD),
        })
        self.p = p

    def forward(self, states, actions, rewards):
        e, (b, t) = self.embed, states.shape
        steps = torch.stack([e.state(states), e.action(actions), e.reward(rewards)], dim=2)
        x = steps.reshape(b, 3 * t, D_MODEL) + e.position(torch.arange(3 * t))
        x = dropout(x, self.p, self.training)
        h = self.transformer(x).view(b, t, 3, D_MODEL)
        h_s, h_a, h_r = (h[:, :, k].contiguous() for k in range(3))
        # s_t token -> a_t; a_t token -> r_t, logprob_t; r_t token -> s_{t+1}.
        return (self.head.action(h_s), self.head.reward(h_a),
                self.head.next_state(h_r), self.head.logprob(h_a))


def masked_cross_entropy(logits, targets, mask):
    """adlab's losses::masked_cross_entropy (no label smoothing), with its accuracy metric."""
    logits, targets, mask = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), mask.reshape(-1)
    total = max(mask.sum().item(), 1.0)
    nll = -logits.log_softmax(-1).gather(1, targets.unsqueeze(1)).squeeze(1)
    loss = (nll * mask).sum() / total
    accuracy = ((logits.argmax(-1) == targets) * mask).sum().item() / total
    return loss, loss.item(), accuracy


def masked_mse(pred, target, mask):
    """adlab's losses::masked_mse (tolerance infinite: every position counts as correct)."""
    total = max(mask.sum().item(), 1.0)
    diff = pred - target
    loss = (diff.square().mean(-1) * mask).sum() / total
    correct = ((diff.abs().amax(-1) < math.inf) * mask).sum().item() / total
    return loss, loss.item(), correct


def is_embedding_param(name):
    """adlab's optim::is_embedding_param."""
    short = name.removeprefix("transformer.")
    return short.startswith(("embed.", "wte.", "wpe.", "head.taken_action."))


def adamw(model):
    """Weight decay only on rank >= 2 non-embedding parameters, as adlab's AdamW::new."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and not is_embedding_param(name) else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), eps=1e-8)


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return math.nan


def time_steps(model, loss_fn, warmup, steps):
    """Times `steps` training steps after `warmup` untimed ones; `loss_fn` runs the forward."""
    opt, params = adamw(model), list(model.parameters())
    fwd, bwd, optim, total = [], [], [], []
    for i in range(warmup + steps):
        if i == warmup:
            cpu_start = time.process_time()
        t0 = time.perf_counter()
        loss = loss_fn()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if i >= warmup:
            for v, dt in ((fwd, t1 - t0), (bwd, t2 - t1), (optim, t3 - t2), (total, t3 - t0)):
                v.append(dt * 1e3)
    cpu = (time.process_time() - cpu_start) * 1e3 / steps
    return cpu, fwd, bwd, optim, total


def median(v):
    return sorted(v)[len(v) // 2]  # upper median, as the Rust bench


def row(name, timing, tokens_per_step):
    cpu, fwd, bwd, optim, total = timing
    step = median(total)
    print(f"| {name:<28} | {step:>8.1f} | {min(total):>8.1f} | {cpu:>8.1f} | {median(fwd):>8.1f} "
          f"| {median(bwd):>8.1f} | {median(optim):>8.1f} | {tokens_per_step / (step / 1e3):>9.0f} "
          f"| {peak_rss_mib():>8.0f} |", flush=True)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def bench_causal_lm(act_name, warmup, steps):
    torch.manual_seed(0)
    model = CausalLm(ACTIVATIONS[act_name])
    model.eval()  # the Rust bench passes no dropout RNG (and dropout is 0)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (BATCH, LM_CONTEXT + 1), generator=g)
    inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
    mask = torch.ones(BATCH, LM_CONTEXT)
    timing = time_steps(model, lambda: masked_cross_entropy(model(inputs), targets, mask)[0],
                        warmup, steps)
    row(f"causal_lm {act_name}", timing, BATCH * LM_CONTEXT)
    return "causal_lm", n_params(model)


def bench_rl_heads(p, warmup, steps):
    torch.manual_seed(0)
    model = RlHeadsSar(p)
    model.train()
    g = torch.Generator().manual_seed(0)
    states, actions, rewards = (torch.randint(0, hi, (BATCH, RL_STEPS), generator=g)
                                for hi in (81, 5, 2))
    logprobs, mask = torch.zeros(BATCH, RL_STEPS), torch.ones(BATCH, RL_STEPS)
    t = RL_STEPS

    def loss_fn():
        action, reward, next_state, logprob = model(states, actions, rewards)
        losses = [
            masked_cross_entropy(action, actions, mask),
            masked_cross_entropy(reward, rewards, mask),
            # The prediction at step t targets s_{t+1}: drop the last prediction, first state.
            masked_cross_entropy(next_state[:, : t - 1].contiguous(), states[:, 1:],
                                 mask[:, : t - 1] * mask[:, 1:]),
            masked_mse(logprob.reshape(-1, 1), logprobs.reshape(-1, 1), mask.reshape(-1)),
        ]
        total = sum(1.0 * loss for loss, _, _ in losses)  # loss weights 1, 1, 1, 1
        total.item()  # the Rust loss reads its total back as a metric
        return total

    timing = time_steps(model, loss_fn, warmup, steps)
    row(f"rl_heads sar dropout {p}", timing, BATCH * RL_STEPS * 3)
    return "rl_heads", n_params(model)


def main():
    global ATTN
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("filters", nargs="*", help="run rows whose name contains any of these")
    ap.add_argument("--quick", action="store_true", help="1 warmup + 3 timed steps")
    ap.add_argument("--threads", type=int, default=1, help="intra- and inter-op threads")
    ap.add_argument("--attn", choices=["sdpa", "math"], default="sdpa")
    args = ap.parse_args()
    ATTN = args.attn
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    warmup, steps = (1, 3) if args.quick else (2, 15)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op / "
          f"{torch.get_num_interop_threads()} inter-op threads, attention {ATTN}; batch {BATCH}, "
          f"d_model 128, 4 layers, 4 heads, d_ff 512, median of {steps} timed steps")
    print("| model                        | step ms  | min ms   | cpu ms   | fwd ms   | bwd ms   | optim ms | tokens/s  | peak MiB |")
    print("|------------------------------|----------|----------|----------|----------|----------|----------|-----------|----------|")
    wanted = lambda name: not args.filters or any(f in name for f in args.filters)
    counts = {}
    for act in ACTIVATIONS:
        if wanted(f"causal_lm {act}"):
            kind, n = bench_causal_lm(act, warmup, steps)
            counts[f"causal_lm {act}"] = (kind, n)
    for p in (0.1, 0.0):
        if wanted(f"rl_heads sar dropout {p}"):
            kind, n = bench_rl_heads(p, warmup, steps)
            counts[f"rl_heads sar dropout {p}"] = (kind, n)
    print()
    for name, (kind, n) in counts.items():
        verdict = "= Rust" if n == RUST_PARAMS[kind] else f"!= Rust {RUST_PARAMS[kind]:,}"
        print(f"{name}: {n:,} parameters ({verdict})")


if __name__ == "__main__":
    main()
