"""Numbers reported in the paper, kept only as labelled reference columns.

Source: Neyshabur (2020), "Towards Learning Convolutions from Scratch", NeurIPS 2020,
arXiv:2007.13657 — Tables 1 and 2 and the text of Sections 2.2 and 4.1. Nothing in this module
is computed; every figure and table of the book shows these beside numbers our code computed.
"""

CITATION = "Neyshabur (2020), Towards Learning Convolutions from Scratch"

#: Table 1, "#param (M)" columns: (orig., FC-emb.)
TABLE1_PARAMS_M = {
    "d-conv": (1.45, 256),
    "d-local": (3.42, 256),
    "d-fc": (256, 256),
    "s-conv": (138, 256),
    "s-local": (147, 256),
    "s-fc": (256, 256),
    "3-fc": (256, 256),
}

#: Table 1, test accuracy (%): {model: {(dataset, epochs): accuracy}}
TABLE1_ACCURACY = {
    "d-conv": {("cifar10", 400): 88.84, ("cifar10", 4000): 89.79, ("cifar100", 400): 63.73,
               ("cifar100", 4000): 62.26, ("svhn", 400): 95.65, ("svhn", 4000): 95.86},
    "d-local": {("cifar10", 400): 86.13, ("cifar10", 4000): 86.07, ("cifar100", 400): 58.58,
                ("cifar100", 4000): 55.71, ("svhn", 400): 95.71, ("svhn", 4000): 95.85},
    "d-fc": {("cifar10", 400): 64.78, ("cifar10", 4000): 63.62, ("cifar100", 400): 36.61,
             ("cifar100", 4000): 35.51, ("svhn", 400): 92.52, ("svhn", 4000): 90.97},
    "s-conv": {("cifar10", 400): 84.14, ("cifar10", 4000): 87.05, ("cifar100", 400): 59.48,
               ("cifar100", 4000): 62.51, ("svhn", 400): 92.34, ("svhn", 4000): 93.38},
    "s-local": {("cifar10", 400): 81.52, ("cifar10", 4000): 85.86, ("cifar100", 400): 56.64,
                ("cifar100", 4000): 62.03, ("svhn", 400): 92.51, ("svhn", 4000): 93.98},
    "s-fc": {("cifar10", 400): 72.77, ("cifar10", 4000): 78.63, ("cifar100", 400): 47.72,
             ("cifar100", 4000): 51.43, ("svhn", 400): 88.64, ("svhn", 4000): 91.80},
    "3-fc": {("cifar10", 400): 69.19, ("cifar10", 4000): 75.12, ("cifar100", 400): 44.95,
             ("cifar100", 4000): 50.75, ("svhn", 400): 85.98, ("svhn", 4000): 86.02},
}

#: Table 2, test accuracy (%) after 4000 epochs: rows (model, method) -> {dataset: accuracy}
TABLE2 = [
    ("S-CONV", "SGD", {"cifar10": 87.05, "cifar100": 62.51, "svhn": 93.38}),
    ("S-LOCAL", "SGD", {"cifar10": 85.86, "cifar100": 62.03, "svhn": 93.98}),
    ("MLP (Neyshabur et al., 2019)", "SGD (no augmentation)", {"cifar10": 58.1, "svhn": 84.3}),
    ("MLP (Mukkamala and Hein, 2017)", "Adam/RMSProp", {"cifar10": 72.2, "cifar100": 39.3}),
    ("MLP (Mocanu et al., 2018)", "SET", {"cifar10": 74.84}),
    ("MLP (Urban et al., 2017)", "deep convolutional teacher", {"cifar10": 74.3}),
    ("MLP (Lin et al., 2016)", "unsupervised pretraining with ZAE", {"cifar10": 78.62}),
    ("MLP (3-FC)", "SGD", {"cifar10": 75.12, "cifar100": 50.75, "svhn": 86.02}),
    ("MLP (S-FC)", "SGD", {"cifar10": 78.63, "cifar100": 51.43, "svhn": 91.80}),
    ("MLP (S-FC)", "beta-LASSO (beta=0)", {"cifar10": 82.45, "cifar100": 55.58, "svhn": 93.80}),
    ("MLP (S-FC)", "beta-LASSO (beta=1)", {"cifar10": 82.52, "cifar100": 55.96, "svhn": 93.66}),
    ("MLP (S-FC)", "beta-LASSO (beta=50)", {"cifar10": 85.19, "cifar100": 59.56, "svhn": 94.07}),
]

#: Section 2.2: the common budget of the FC counterparts in Table 1 ("roughly 256 million")
FC_BUDGET = 256_000_000

#: Appendix A.2 hyper-parameters
LR = 0.1
BATCH_SIZE = 512
BETA = 50.0
LAMBDAS = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5)
SGD_MOMENTA = (0.0, 0.9)
SGD_WEIGHT_DECAYS = (0.0, 1e-4, 2e-4, 5e-4, 1e-3)
