"""Derive, print, check and compile the gradient of one sigmoid neuron with a logistic loss.

python examples/derive_neuron.py
"""

import numpy as np
import sympy

import symdl as sd

w1, w2, b, x1, x2, y = sympy.symbols("w_1 w_2 b x_1 x_2 y")
z = w1 * x1 + w2 * x2 + b
loss = sd.binary_cross_entropy(sd.sigmoid(z), y)

derivation = sd.derive(loss, [w1, w2, b], names={z: "z"})
print(derivation, end="\n\n")
print("closed form of dL/db:", sympy.simplify(derivation.closed_form()[2]), end="\n\n")
print(derivation.to_latex())

# The compiled function is vectorised: a batch of four examples at once.
step = derivation.compile()
X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y = np.array([0.0, 1.0, 1.0, 1.0])
loss_values, (g1, g2, gb) = step(w_1=0.5, w_2=-0.3, b=0.1, x_1=X[:, 0], x_2=X[:, 1], y=Y)
print("\nper-example loss:", np.round(loss_values, 4))
print("mean gradient:", np.round([g1.mean(), g2.mean(), gb.mean()], 4))
