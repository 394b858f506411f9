"""``model.builder``: the parsers and the compiler build the model's frozen dataclasses
without their generated ``__init__``; what they build must be the object the constructor
builds, in every way a caller can see."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocpi.tariffs import model
from ocpi.tariffs.pricer import CompiledTariff

_MODELS = [
    model.Tariff,
    model.Cdr,
    model.PriceComponent,
    model.TariffElement,
    model.TariffRestrictions,
    model.CdrDimension,
    model.ChargingPeriod,
    CompiledTariff,
]
# Hashable, comparable and picklable values of several types (the models check nothing).
_VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.tuples(st.integers()))


@pytest.mark.parametrize("cls", _MODELS, ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_built_as_the_constructor_builds(cls: type[Any], data: st.DataObject) -> None:
    names = [field.name for field in dataclasses.fields(cls)]
    values = data.draw(st.lists(_VALUES, min_size=len(names), max_size=len(names)))
    built = model.builder(cls)(*values)
    constructed = cls(*values)
    assert type(built) is cls
    assert built == constructed
    assert hash(built) == hash(constructed)
    assert repr(built) == repr(constructed)
    assert dataclasses.astuple(built) == tuple(values)
    assert [getattr(built, name) for name in names] == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, names[0], None)
    assert pickle.loads(pickle.dumps(built)) == constructed
    assert copy.deepcopy(built) == constructed
    assert dataclasses.replace(built, **{names[0]: values[0]}) == constructed


def test_only_a_dataclass_with_a_slot_per_field_in_order() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True, weakref_slot=True)
    class WithWeakref:
        a: int

    for cls in (NoSlots, WithWeakref):
        with pytest.raises(TypeError, match="a slot per field"):
            model.builder(cls)
    with pytest.raises(TypeError):
        model.builder(int)


def test_the_builder_takes_every_field() -> None:
    build = model.builder(model.CdrDimension)
    with pytest.raises(TypeError):
        build(model.CdrDimensionType.ENERGY)  # the volume missing: no default applies
