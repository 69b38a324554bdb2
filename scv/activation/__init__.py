"""The activation layer: lifecycle programmes run as Faust agents on what the core publishes.

The core (normalise → resolve → profiles) runs on scv's own batched loop; this layer reads its
output, ``profiles.v1``, and decides which programme messages a person gets: a welcome after
they register, a cross-sell after a purchase. Programmes are declared in YAML
(:mod:`scv.activation.programmes`), judged by pure rules over the profile's facts
(:mod:`scv.activation.facts`, :mod:`scv.activation.decide`), and wired to Kafka by a Faust
application (:mod:`scv.activation.app`), the part users extend. docs/activation.md is the
cookbook.

Pure modules here import no Kafka and no Faust; only ``app`` does.
"""
