"""The feature list: one declaration that data, training and the API all derive from."""

import pytest

from {{ cookiecutter.package_name }}.features import FEATURES, LABEL, Feature, feature_names


def test_feature_names_are_unique_in_declaration_order_and_exclude_the_label():
    names = feature_names()
    assert names == [feature.name for feature in FEATURES]
    assert feature_names((Feature("b", "int"), Feature("a", "float"))) == ["b", "a"]
    assert len(set(names)) == len(names)
    assert LABEL not in names


@pytest.mark.parametrize("feature", FEATURES, ids=lambda feature: feature.name)
def test_every_feature_has_a_kind_a_sane_range_a_description_and_survives_its_metadata(feature):
    assert feature.kind in ("float", "int", "bool")
    assert feature.description
    if feature.kind == "bool":
        assert (feature.minimum, feature.maximum) == (None, None)
    elif feature.minimum is not None and feature.maximum is not None:
        assert feature.minimum < feature.maximum
    assert Feature.from_dict(feature.to_dict()) == feature
