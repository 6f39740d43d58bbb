"""SavedModel directories without TensorFlow: TF1 hub modules and TF2 SavedModels.

A SavedModel directory holds ``saved_model.pb`` and ``variables/variables.{index,data-*}`` (a tensor bundle,
:mod:`weights_tools.tensor_bundle`); a TF1 hub module adds ``tfhub_module.pb``. The bundle's keys are either

* **name-based** (TF1 ``Saver``, TF1 hub modules): the key is the variable's graph name, i.e. the TF-slim
  name (``MobilenetV1/Conv2d_0/weights``); or
* **object-based** (TF2 ``tf.saved_model.save``): the key is a path in the object graph
  (``variables/0/.ATTRIBUTES/VARIABLE_VALUE``) and the scalar string entry ``_CHECKPOINTABLE_OBJECT_GRAPH``
  holds a ``TrackableObjectGraph``. Each node's ``SerializedTensor {name = 1; full_name = 2;
  checkpoint_key = 3}`` maps a key back to the variable's original name (``full_name``). Where
  ``full_name`` is empty, ``saved_model.pb``'s ``SavedObjectGraph`` (``MetaGraphDef`` field 7) gives the
  node's ``SavedVariable.name`` (field 6); node ids are shared by both graphs.

From ``saved_model.pb`` we also read each signature's input shape (``MetaGraphDef.signature_def``, field 5)
and the hub ``ImageModuleInfo`` attachment (``collection_def["hub_module_attachments"]``) to learn the
expected image size.
"""
import os
from dataclasses import dataclass, field

from mobilenet_np.errors import CorruptFileError, WeightsFileNotFoundError

from . import protobuf_wire as pw
from .tensor_bundle import TensorBundle

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
ATTRIBUTE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


@dataclass
class SavedModelVariables:
    """Variables of a SavedModel under their original names, and what the container said about inputs."""
    variables: dict
    object_based: bool
    is_hub_module: bool
    image_size: tuple = None          # (height, width) when the module or a signature says it
    signatures: list = field(default_factory=list)
    bundle_prefix: str = ""
    notes: list = field(default_factory=list)


def is_saved_model_dir(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


def _object_graph_names(bundle):
    """``{checkpoint key: full_name}`` from the bundle's TrackableObjectGraph (TF2), plus node ids."""
    raw = bundle.read(OBJECT_GRAPH_KEY)
    blob = raw.reshape(-1)[0] if hasattr(raw, "reshape") else raw
    graph = pw.decode_message(blob)
    names, node_of_key = {}, {}
    for node_id, node_blob in enumerate(graph.get(1, [])):
        node = pw.decode_message(node_blob)
        for attr_blob in node.get(2, []):
            attr = pw.decode_message(attr_blob)
            key = pw.get_str(attr, 3)
            if key:
                names[key] = pw.get_str(attr, 2)
                node_of_key[key] = node_id
    return names, node_of_key


def _meta_graph_facts(pb_path):
    """``(saved variable names by node id, [(signature, (h, w) or None)], hub image size or None)``."""
    with open(pb_path, "rb") as f:
        data = f.read()
    try:
        saved_model = pw.decode_message(data)
        metas = [pw.decode_message(m) for m in saved_model.get(2, [])]
    except CorruptFileError as e:
        raise CorruptFileError(f"{pb_path}: not a SavedModel protobuf: {e}") from None
    var_names, signatures, hub_size = {}, [], None
    for meta in metas:
        object_graph = pw.get_message(meta, 7)
        for node_id, node_blob in enumerate(object_graph.get(1, [])):
            node = pw.decode_message(node_blob)
            variable = pw.get_message(node, 7)
            if variable:
                var_names[node_id] = pw.get_str(variable, 6)
        for entry_blob in meta.get(5, []):          # map<string, SignatureDef>
            entry = pw.decode_message(entry_blob)
            name, sig = pw.get_str(entry, 1), pw.get_message(entry, 2)
            size = None
            for input_blob in sig.get(1, []):        # map<string, TensorInfo> inputs
                info = pw.get_message(pw.decode_message(input_blob), 2)
                dims = [pw.get_int(pw.decode_message(d), 1) for d in pw.get_message(info, 3).get(2, [])]
                if len(dims) == 4 and dims[1] > 0 and dims[2] > 0:
                    size = (dims[1], dims[2])
            signatures.append((name, size))
        for entry_blob in meta.get(4, []):          # map<string, CollectionDef>
            entry = pw.decode_message(entry_blob)
            if pw.get_str(entry, 1) != "hub_module_attachments":
                continue
            for blob in pw.get_message(pw.get_message(entry, 2), 2).get(1, []):   # bytes_list.value
                attachment = pw.decode_message(blob)
                if pw.get_str(attachment, 1) == "image_module_info":
                    size_msg = pw.get_message(pw.decode_message(pw.get_bytes(attachment, 2)), 1)
                    h, w = pw.get_int(size_msg, 1), pw.get_int(size_msg, 2)
                    if h > 0 and w > 0:
                        hub_size = (h, w)
    return var_names, signatures, hub_size


def read_saved_model(path):
    """All variables of the SavedModel (or TF1 hub module) directory ``path`` under their original names."""
    pb = os.path.join(path, "saved_model.pb")
    prefix = os.path.join(path, "variables", "variables")
    if not os.path.isfile(pb):
        raise WeightsFileNotFoundError(f"{path}: no saved_model.pb (not a SavedModel directory)")
    if not os.path.isfile(prefix + ".index"):
        raise WeightsFileNotFoundError(f"{path}: the SavedModel has no variables/variables.index")
    var_names, signatures, hub_size = _meta_graph_facts(pb)
    bundle = TensorBundle(prefix)
    notes = []
    if OBJECT_GRAPH_KEY in bundle:
        key_names, node_of_key = _object_graph_names(bundle)
        variables = {}
        for key in bundle.keys():
            if not key.endswith(ATTRIBUTE_SUFFIX):
                continue
            name = key_names.get(key) or var_names.get(node_of_key.get(key), "")
            if not name:
                notes.append(f"no variable name recorded for {key}; skipped")
                continue
            variables[name.split(":")[0]] = bundle.read(key)
        object_based = True
    else:
        variables = {k: bundle.read(k) for k in bundle.keys() if k}
        object_based = False
    size = hub_size or next((s for _, s in signatures if s), None)
    return SavedModelVariables(variables, object_based, os.path.isfile(os.path.join(path, "tfhub_module.pb")),
                               size, [n for n, _ in signatures], prefix, notes)
