"""The derivation core: programs of named steps, adjoint symbols, the vector-Jacobian rule
table, the chain rule (backward), Derivation, and grad/jacobian/hessian/derive."""
