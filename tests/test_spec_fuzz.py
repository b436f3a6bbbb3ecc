"""Fuzzing the spec loader: whatever the document, a valid Network or a SpecError, nothing else."""

import tomllib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symprop import symbolic
from symprop.symbolic import SpecError
from symprop.symbolic.spec import PRESETS_DIR

from networks import specs

KEYS = ["name", "description", "layout", "inputs", "batch", "input", "target", "wrt_input", "layers",
        "loss", "values", "units", "activation", "weight", "bias", "shared_bias", "negative_slope",
        "kind", "reduction", "scale", "labels", "l2", "x", "y", "W1", "b1"]
scalars = st.one_of(st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["relu", "softmax", "row", "column", "x", "W1", "class", "", "1x", "mean",
                                     "cross_entropy", "squared_error", "binary_cross_entropy", "sigmoid"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
                      max_leaves=12)


def outcome(text: str):
    try:
        return symbolic.loads(text, source="fuzz.toml")
    except SpecError as error:
        assert str(error).startswith("fuzz.toml: ") and "\n" not in str(error)
        return error


def dumps(doc: dict) -> str:
    """A small TOML writer for what the strategies draw (inline tables and arrays)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return {float("inf"): "inf", float("-inf"): "-inf"}.get(v, "nan" if v != v else repr(v))
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return str(v)
    return "\n".join(f"{k} = {value(v)}" for k, v in doc.items()) + "\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.dictionaries(st.sampled_from(KEYS), values, max_size=8))
def test_random_documents(doc):
    outcome(dumps(doc))


PRESET_DOCS = [tomllib.loads(p.read_text()) for p in sorted(PRESETS_DIR.glob("*.toml"))]


@st.composite
def mutated_presets(draw):
    doc = draw(st.sampled_from(PRESET_DOCS))
    doc = {k: (dict(v) if isinstance(v, dict) else [dict(x) for x in v] if k == "layers" else v)
           for k, v in doc.items()}
    for _ in range(draw(st.integers(1, 3))):
        layers = doc.get("layers")  # a mutation may have made it a bool, a number or a string
        tables = [doc] + [t for t in (layers if isinstance(layers, list) else []) if isinstance(t, dict)]
        tables += [doc[k] for k in ("loss", "values") if isinstance(doc.get(k), dict)]
        table = draw(st.sampled_from(tables))
        if table and draw(st.booleans()):
            del table[draw(st.sampled_from(sorted(table)))]
        else:
            table[draw(st.sampled_from(KEYS))] = draw(values)
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated_presets())
def test_mutated_presets(doc):
    result = outcome(dumps(doc))
    if not isinstance(result, SpecError):  # a valid network must also derive
        symbolic.derive(result)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=specs(kinds=True))
def test_every_spec_drawn_with_kinds_loads(text):
    network = symbolic.loads(text, source="drawn.toml")  # any SpecError fails the test
    assert network.masks == tuple(layer.mask for layer in network.layers if layer.kind == "dropout")
    shapes = network.shapes()
    assert set(network.parameters) | set(network.masks) | {network.input, network.target} == set(shapes)
