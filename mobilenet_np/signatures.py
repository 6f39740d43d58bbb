"""TF-Hub-style signatures on our models, as the seed module pages describe them.

    model.signatures["image_feature_vector"](images)      -> [N, num_features]
    model.signatures["image_classification"](images)      -> [N, 1001] logits
    model.signatures["default"](images)                   -> the module kind's default output
    model.signatures["default"](images, as_dict=True)     -> {"default": ..., "<Scope>/<endpoint>": ...}

A classification module's default is ``image_classification``, a feature-vector module's
``image_feature_vector`` (set from the TF-Hub handle the model was loaded by; a model without logits always
defaults to features). With ``as_dict=True`` the dictionary also holds every intermediate endpoint, keyed as the
hub modules key them (architecture scope + slim endpoint, e.g. ``MobilenetV1/Conv2d_13_pointwise``).
"""
FEATURE_VECTOR = "image_feature_vector"
CLASSIFICATION = "image_classification"


class Signature:
    """One callable signature of a model."""

    def __init__(self, model, name):
        self.model, self.name = model, name

    def __call__(self, images, as_dict=False):
        model = self.model
        if not as_dict:
            return model.features(images) if self.name == FEATURE_VECTOR else model.classify(images)
        ends = model.endpoints(images)
        scope = model.architecture.scope
        out = {f"{scope}/{k}": v for k, v in ends.items()}
        pooled = ends[model.architecture.feature_endpoint][:, 0, 0, :]
        out["default"] = pooled if self.name == FEATURE_VECTOR else ends["Logits"]
        return out

    def __repr__(self):
        return f"<signature {self.name!r} of {self.model!r}>"


class HubInterface:
    """Mixed into every model: ``signatures``, the default signature, and the hub's expected image size."""

    module_kind = None          # "classification" or "feature_vector" when loaded by a TF-Hub handle
    batch_norm_momentum = None  # accepted like the v3/v4 modules; it only matters for training

    @property
    def default_signature(self):
        if self.architecture.logits is None or self.module_kind == "feature_vector":
            return FEATURE_VECTOR
        return CLASSIFICATION

    @property
    def signatures(self):
        names = [FEATURE_VECTOR] + ([CLASSIFICATION] if self.architecture.logits is not None else [])
        table = {name: Signature(self, name) for name in names}
        table["default"] = table[self.default_signature]
        return table


def get_expected_image_size(model):
    """``[height, width]`` the model was trained at (``hub.get_expected_image_size``); other sizes >= 32 run too."""
    return list(model.input_size)
