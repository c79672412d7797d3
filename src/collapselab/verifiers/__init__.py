"""Verifiers: verdicts (``__call__``) or scores (``score``) on candidates; see ``collapselab.interfaces.Verifier``.

Each YAML under conf/verifier/ names a ``_target_``; the run offers its parts (``data``,
``device``, and on MNIST ``nets``, ``conditional_model``, ``progress``) and a verifier receives the ones
its signature names. An oracle knows the ground truth, which belongs to the data: ``verifier=oracle`` and
``noisy_oracle`` compose conf/verifier/truth/<oracle>_<data>.yaml, each naming its own class and keys (linear,
gaussian: a centre theta_c, ``verifiers.linear``; mnist: the judge network, ``verifiers.mnist``).
"""
