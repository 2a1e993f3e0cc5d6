"""Rules for the parameters the paper's AGD has no rule for: biases, normalisation layers'
affine parameters and embeddings. Outside the paper (docs/beyond.md): off unless asked for with
`extensions=True` (`agd.init_weights(model, extensions=True)`, `AGD(model, extensions=True)`).

Every rule below follows from one reading of the paper's rule for a matrix (docs/algorithm.md):
a tensor is a linear map from inputs whose entries are of order one to outputs whose entries
are of order one; its scale is sqrt(out/in), the ratio of the output's norm to the input's; it
is initialised with every singular value equal to that scale; its update is
(η/L)·scale·∇/||∇||_F, so the update changes the tensor's output by at most η/L relative to the
output's size. What differs per kind is which map the tensor is, and so its (out, in):

    kind       parameter                     the map                          (out, in)     scale            init  in L
    bias       Linear/Conv bias, norm shift  b·1, (d, 1) on the constant 1    (d, 1)        sqrt(d)          0     no
    norm       norm gain (its weight)        diag(γ), (d, d) diagonal         (d, d)        1                1     no
    embedding  Embedding(vocab, dim).weight  E^T, one-hot of vocab -> dim     (dim, vocab)  sqrt(dim/vocab)  below yes

* bias: the input of a bias is the constant 1, a 1-dimensional input with entries of order
  one, so (out, in) = (d, 1) and the scale is sqrt(d): the update moves b by (η/L)·sqrt(d) in
  norm, i.e. by η/L per entry, the same size (η/L)·sqrt(d_out) as the largest change that the
  weight's update can make to the layer's output. It starts at zero, as biases usually do
  (a (d, 1) semi-orthogonal matrix times sqrt(d) would put ±1-sized entries in every output,
  as large as the signal). The shift β of a norm layer is the same thing: a bias added to the
  normalised output, whose entries are of order one.
* norm: the gain γ multiplies the normalised output entrywise, the diagonal matrix diag(γ) of
  shape (d, d). The paper's initialisation of a (d, d) matrix (orthogonal, times sqrt(d/d) = 1)
  restricted to diagonals is the identity, γ = 1, the usual start. Its gradient as a matrix is
  diag(∇γ), whose Frobenius norm is ||∇γ||_2, so the update is (η/L)·∇γ/||∇γ||_2.
* L counts layers, as in the paper: the maps between two nonlinearities. A bias or a norm's
  gain and shift act on the features of the weight next to them with no nonlinearity in
  between (conv -> BN -> ReLU; LayerNorm -> query/key/value), so they belong to that weight's
  layer and add no depth: they move, and enter G, but do not count in L. (Counting the gains
  nearly doubles L in a network with a norm after every weight, which halves every step: on
  VGG-16 at small scale it cost 10 points of training accuracy after 12 epochs, 57.1% against
  67.5%; docs/beyond.md.) Matrices, conv kernels and embeddings are layers and count.
* embedding: nn.Embedding(vocab, dim) stores a (vocab, dim) tensor but maps a one-hot of size
  vocab to a vector of size dim, so it is the matrix E^T of shape (out, in) = (dim, vocab) and
  its scale is sqrt(dim/vocab), as the rule table orients it (agd/rules.py). With vocab <= dim
  the paper's initialisation (every singular value sqrt(dim/vocab)) gives the tokens orthogonal
  vectors of norm sqrt(dim/vocab) each. With vocab > dim no initialisation can make all
  tokens' vectors orthogonal, and the paper's would give them unequal norms; so every token's
  vector is then set to the same norm, keeping the whole matrix's Frobenius norm
  sqrt(dim/vocab)·sqrt(dim) (`init_embedding_`). The update normalises the whole matrix, like
  any matrix (tokens absent from the batch have zero gradient rows and stay put). (Reading the
  one-hot input as having norm 1, i.e. in = 1 and scale sqrt(dim), is the other defensible
  choice; on the GPT of docs/beyond.md it changed the validation loss after 600 steps by under
  1%.)

A 1-D parameter of any other module (a custom gate, a learned temperature) has no known map,
so it is refused by design ("vector" kind in agd/rules.py): AGD cannot guess its scale.

The authors' later experimental code handled biases and norm parameters differently: each 1-D
tensor is grouped with the weight registered just before it and normalised by that weight's
gradient norm. That depends on the order in which a module registers its parameters and gives
a bias a step whose size in its own units is arbitrary (the ratio of two unrelated gradient
norms), so it is not followed here.

The entries of these kinds are in the one rule table (agd/rules.py), beside the paper's, with
everything else about them (matching, refusal, whether they count in L); this module holds the
maps' (out, in) and the initialisations they use.
"""

from __future__ import annotations

import math

import torch

from agd.functional import semi_orthogonal

Shape = tuple[int, ...]


def bias_fans(shape: Shape) -> tuple[int, int]:
    """(d, 1): a bias is a (d, 1) matrix applied to the constant input 1."""
    return shape[0], 1


def norm_gain_fans(shape: Shape) -> tuple[int, int]:
    """(d, d): a norm gain is the diagonal matrix diag(γ)."""
    return shape[0], shape[0]


def embedding_fans(shape: Shape) -> tuple[int, int]:
    """(dim, vocab) for a tensor stored (vocab, dim): it maps a one-hot of size vocab to dim."""
    return shape[1], shape[0]


@torch.no_grad()
def zeros_(tensor: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> None:
    """A bias starts at zero (its scale sizes its updates, not its start)."""
    tensor.zero_()


@torch.no_grad()
def ones_(tensor: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> None:
    """A norm gain starts at the identity map diag(1), the (d, d) orthogonal matrix times 1."""
    tensor.fill_(scale)


@torch.no_grad()
def init_embedding_(weight: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> None:
    """weight (vocab, dim): a semi-orthogonal draw of E^T (dim, vocab) times `scale`, then every
    token's vector (a row of `weight`) set to the same norm, so that the whole matrix keeps the
    Frobenius norm scale·sqrt(min(vocab, dim)) of the paper's initialisation. With vocab <= dim
    this changes nothing: the rows are already orthonormal times `scale`."""
    vocab, dim = weight.shape
    draw = semi_orthogonal((dim, vocab), generator, torch.float32, weight.device).T  # (vocab, dim)
    per_token = scale * math.sqrt(min(vocab, dim) / vocab)
    rows = draw / torch.linalg.vector_norm(draw, dim=1, keepdim=True)
    weight.copy_(rows * per_token)
