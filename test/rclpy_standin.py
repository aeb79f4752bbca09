"""A small stand-in for the parts of rclpy and the message packages that perception_node uses.

The pip-installed suite has no ROS 2: test_node_standin.py, test_faults.py and
test_fuzz_messages.py put many cases through the node's own code against this stand-in, in
seconds. It copies the behaviour read in the rclpy (Humble and Jazzy) and rosidl_generator_py
sources that the node relies on -- typed parameters with range checks before on-set callbacks,
lifecycle publishers that publish only while active, `byte` fields as length-1 bytes, uint8[]
taking array.array('B') as is and checking every element otherwise, fixed float64 arrays as
numpy arrays, strict int/float/str field types -- so that a misuse fails here as it would there.
It does NOT replace the launch tests in test/ros/, which run the installed node on ROS 2.
"""

from __future__ import annotations

import array
import enum
import itertools
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

# -- messages ---------------------------------------------------------------------------------

_INT_TYPES = {"uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"}
_FLOAT_TYPES = {"float32", "float64"}
REGISTRY: dict[str, type] = {}


class Message:
    _fields: dict[str, str] = {}

    # Field values live in "_<name>" instance attributes; the field table is read from the class
    # (type(self)._fields), since a field called "fields" (PointCloud2) stores itself as "_fields".
    def __init__(self, **kwargs: Any) -> None:
        table = type(self)._fields
        unknown = set(kwargs) - set(table)
        assert not unknown, f"{type(self).__name__} has no fields {unknown}"
        for name, field_type in table.items():
            object.__setattr__(self, "_" + name, _default(field_type))
        for name, value in kwargs.items():
            setattr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        table = type(self)._fields
        if name not in table:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        object.__setattr__(self, "_" + name, _check(type(self).__name__, name, table[name], value))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in type(self)._fields:
            raise AttributeError(name)
        return object.__getattribute__(self, "_" + name)


def _split(field_type: str) -> tuple[str, str | None]:
    if "[" in field_type:
        base, size = field_type.split("[", 1)
        return base, size.rstrip("]")
    return field_type, None


def _default(field_type: str) -> Any:
    base, size = _split(field_type)
    if size is not None:
        if size:  # fixed array
            return np.zeros(int(size), dtype=np.float64 if base == "float64" else np.float32)
        if base == "uint8":
            return array.array("B")
        if base == "float64":
            return array.array("d")
        return []
    if base in _INT_TYPES:
        return 0
    if base in _FLOAT_TYPES:
        return 0.0
    if base == "bool":
        return False
    if base == "byte":
        return b"\x00"
    if base == "string":
        return ""
    return REGISTRY[base]()


def _check(owner: str, name: str, field_type: str, value: Any) -> Any:
    base, size = _split(field_type)
    where = f"{owner}.{name} ({field_type})"
    if size is not None:
        if size:
            assert isinstance(value, np.ndarray) and value.dtype == np.float64 and value.size == int(size) \
                or (len(value) == int(size) and all(isinstance(v, float) for v in value)), where
            return np.asarray(value, dtype=np.float64)
        if base == "uint8":
            if isinstance(value, array.array):
                assert value.typecode == "B", where
                return value
            assert all(isinstance(v, int) and 0 <= v < 256 for v in value), where  # Humble's slow path
            return array.array("B", value)
        if base == "float64":
            if isinstance(value, array.array):
                assert value.typecode == "d", where
                return value
            assert all(isinstance(v, float) for v in value), where
            return array.array("d", value)
        assert isinstance(value, (list, tuple)) and not isinstance(value, str), where
        for item in value:
            _check(owner, name, base, item)
        return list(value)
    if base in _INT_TYPES:
        assert isinstance(value, int), f"{where}: got {type(value).__name__}"
        return value
    if base in _FLOAT_TYPES:
        assert isinstance(value, float), f"{where}: got {type(value).__name__}"
        return value
    if base == "bool":
        assert isinstance(value, bool), where
        return value
    if base == "byte":
        assert isinstance(value, bytes) and len(value) == 1, f"{where}: a ROS byte is a length-1 bytes"
        return value
    if base == "string":
        assert isinstance(value, str), where
        return value
    assert isinstance(value, REGISTRY[base]), f"{where}: got {type(value).__name__}"
    return value


def define(name: str, text: str) -> type:
    """A message class from .msg text (constants and comments ignored)."""
    fields = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or "=" in line:
            continue
        field_type, field_name = line.split()[:2]
        fields[field_name] = field_type.split("/")[-1]
    cls = type(name, (Message,), {"_fields": fields})
    REGISTRY[name] = cls
    return cls


Time = define("Time", "int32 sec\nuint32 nanosec")
Header = define("Header", "Time stamp\nstring frame_id")
RegionOfInterest = define("RegionOfInterest", "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify")
Image = define("Image", "Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
                        "uint32 step\nuint8[] data")
CompressedImage = define("CompressedImage", "Header header\nstring format\nuint8[] data")
CameraInfo = define("CameraInfo", "Header header\nuint32 height\nuint32 width\nstring distortion_model\n"
                                  "float64[] d\nfloat64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\n"
                                  "uint32 binning_y\nRegionOfInterest roi")
PointField = define("PointField", "string name\nuint32 offset\nuint8 datatype\nuint32 count")
for _name, _value in (("INT8", 1), ("UINT8", 2), ("INT16", 3), ("UINT16", 4), ("INT32", 5), ("UINT32", 6),
                      ("FLOAT32", 7), ("FLOAT64", 8)):
    setattr(PointField, _name, _value)
PointCloud2 = define("PointCloud2", "Header header\nuint32 height\nuint32 width\nPointField[] fields\n"
                                    "bool is_bigendian\nuint32 point_step\nuint32 row_step\nuint8[] data\nbool is_dense")
KeyValue = define("KeyValue", "string key\nstring value")
DiagnosticStatus = define("DiagnosticStatus", "byte level\nstring name\nstring message\nstring hardware_id\n"
                                              "KeyValue[] values")
for _level, _value in (("OK", 0), ("WARN", 1), ("ERROR", 2), ("STALE", 3)):
    setattr(DiagnosticStatus, _level, bytes([_value]))
DiagnosticArray = define("DiagnosticArray", "Header header\nDiagnosticStatus[] status")
VisionClass = define("VisionClass", "uint16 class_id\nstring class_name")
LabelInfo = define("LabelInfo", "Header header\nVisionClass[] class_map\nfloat32 threshold")
IntegerRange = define("IntegerRange", "int64 from_value\nint64 to_value\nuint64 step")
FloatingPointRange = define("FloatingPointRange", "float64 from_value\nfloat64 to_value\nfloat64 step")
ParameterDescriptor = define("ParameterDescriptor", "string name\nuint8 type\nstring description\n"
                                                    "string additional_constraints\nbool read_only\n"
                                                    "bool dynamic_typing\nFloatingPointRange[] floating_point_range\n"
                                                    "IntegerRange[] integer_range")
SetParametersResult = define("SetParametersResult", "bool successful\nstring reason")
HydraNetResult = define("HydraNetResult", (Path(__file__).resolve().parents[1] / "msg" / "HydraNetResult.msg").read_text())

# -- rclpy ------------------------------------------------------------------------------------


class ParameterException(Exception):
    pass


class InvalidParameterTypeException(ParameterException):
    pass


class InvalidParameterValueException(ParameterException):
    pass


class Parameter:
    """rclpy.parameter.Parameter: (name, type_, value), the type taken from the value if not given."""

    class Type(enum.IntEnum):
        NOT_SET = 0
        BOOL = 1
        INTEGER = 2
        DOUBLE = 3
        STRING = 4
        STRING_ARRAY = 9

    def __init__(self, name: str, type_: "Parameter.Type | None" = None, value: Any = None) -> None:
        if type_ is Parameter.Type.STRING_ARRAY:
            assert isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value), (name, value)
        self.name, self.type_, self.value = name, type_, value


class TransitionCallbackReturn(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


class LifecycleState:
    def __init__(self, label: str = "unconfigured", state_id: int = 1) -> None:
        self.label, self.state_id = label, state_id


class Logger:
    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []
        self._once: set[tuple[str, int]] = set()

    def _log(self, level: str, message: str, **kwargs: Any) -> None:
        assert set(kwargs) <= {"once", "throttle_duration_sec", "skip_first"}, kwargs
        if kwargs.get("once"):
            caller = sys._getframe(2)
            key = (caller.f_code.co_filename, caller.f_lineno)
            if key in self._once:
                return
            self._once.add(key)
        self.records.append((level, message))

    def info(self, message: str, **kwargs: Any) -> None:
        self._log("info", message, **kwargs)

    def warning(self, message: str, **kwargs: Any) -> None:
        self._log("warning", message, **kwargs)

    def error(self, message: str, **kwargs: Any) -> None:
        self._log("error", message, **kwargs)


class Publisher:
    def __init__(self, msg_type: type, topic: str, qos: Any, *, lifecycle: bool) -> None:
        self.msg_type, self.topic, self.qos, self.lifecycle = msg_type, topic, qos, lifecycle
        self.sent: list[Any] = []
        self.subscribers = 0
        self.enabled = not lifecycle
        self.destroyed = False

    def publish(self, msg: Any) -> None:
        assert not self.destroyed, f"publish on destroyed publisher {self.topic}"
        assert isinstance(msg, self.msg_type), f"{self.topic}: {type(msg).__name__} is not {self.msg_type.__name__}"
        if self.enabled:  # a LifecyclePublisher drops messages while not activated
            self.sent.append(msg)

    def get_subscription_count(self) -> int:
        return self.subscribers


class Subscription:
    def __init__(self, msg_type: type, topic: str, callback: Any, qos: Any) -> None:
        self.msg_type, self.topic, self.callback, self.qos = msg_type, topic, callback, qos


class Timer:
    def __init__(self, period: float, callback: Any, clock: Any = None) -> None:
        self.period, self.callback, self.clock = period, callback, clock


class ClockType(enum.IntEnum):  # rclpy.clock_type.ClockType (re-exported by rclpy.clock)
    UNINITIALIZED = 0
    ROS_TIME = 1
    SYSTEM_TIME = 2
    STEADY_TIME = 3


class Clock:
    _ticks = itertools.count(1)

    def __init__(self, *, clock_type: ClockType = ClockType.SYSTEM_TIME) -> None:
        self.clock_type = clock_type

    def now(self) -> "Clock":
        self._t = next(self._ticks)
        return self

    def to_msg(self) -> Time:
        return Time(sec=self._t, nanosec=0)


class LifecycleNode:
    """rclpy.lifecycle.LifecycleNode as far as the node uses it."""

    def __init__(self, node_name: str, *, parameter_overrides: list | None = None) -> None:
        self.name = node_name
        self.overrides = {p.name: p.value for p in parameter_overrides or []}
        # The attribute names rclpy's Node uses for the same things: a subclass that overwrote
        # one of them breaks here as it would under rclpy.
        self._parameters: dict[str, Any] = {}
        self._descriptors: dict[str, Any] = {}
        self._parameters_callbacks: list = []
        self._publishers: list[Publisher] = []
        self._subscriptions: list[Subscription] = []
        self._timers: list[Timer] = []
        self._logger = Logger()
        self._clock = Clock()

    # read-only views for the tests, as rclpy's Node offers publishers/subscriptions/timers
    @property
    def publishers(self) -> list[Publisher]:
        return list(self._publishers)

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions)

    @property
    def timers(self) -> list[Timer]:
        return list(self._timers)

    @property
    def logger(self) -> Logger:
        return self._logger

    # parameters: type from the default (or given by type: a string array), range checked, then
    # the on-set callbacks
    def _apply(self, name: str, value: Any, descriptor: Any) -> tuple[bool, str]:
        declared = descriptor.__dict__.get("_declared_type")
        if declared is list:
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                return False, f"Wrong parameter type, expected 'string_array' got '{type(value).__name__}'"
        elif type(value) is not declared:
            return False, f"Wrong parameter type, expected '{declared.__name__}' got '{type(value).__name__}'"
        for ranges in (descriptor.integer_range, descriptor.floating_point_range):
            if ranges and not ranges[0].from_value <= value <= ranges[0].to_value:
                return False, f"Parameter {name} out of range"
        for callback in self._parameters_callbacks:
            result = callback([Parameter(name, value=value)])
            if not result.successful:
                return False, result.reason
        return True, ""

    def declare_parameter(self, name: str, value: Any, descriptor: Any, ignore_override: bool = False) -> Parameter:
        assert name not in self._parameters, f"{name} declared twice"
        if isinstance(value, Parameter.Type):
            # Declared by type without a value (rclpy: statically typed, uninitialized): unset until given.
            assert value is Parameter.Type.STRING_ARRAY, value
            object.__setattr__(descriptor, "_declared_type", list)
            if ignore_override or name not in self.overrides:
                self._parameters[name], self._descriptors[name] = None, descriptor
                return Parameter(name, Parameter.Type.NOT_SET, None)
            value = None
        else:
            assert not (isinstance(value, list) and not value), "rclpy types an empty list as a byte array"
            object.__setattr__(descriptor, "_declared_type", list if isinstance(value, list) else type(value))
        actual = value if ignore_override or name not in self.overrides else self.overrides[name]
        ok, reason = self._apply(name, actual, descriptor)
        if not ok:
            if reason.startswith("Wrong parameter type"):
                raise InvalidParameterTypeException(f"{name}: {reason}")
            raise InvalidParameterValueException(f"{name}: {reason}")
        self._parameters[name], self._descriptors[name] = actual, descriptor
        return Parameter(name, value=actual)

    def get_parameter(self, name: str) -> Parameter:
        assert self._parameters[name] is not None, f"{name} is uninitialized (rclpy raises ParameterUninitializedException)"
        return Parameter(name, value=self._parameters[name])

    def get_parameter_or(self, name: str, alternative_value: Parameter | None = None) -> Parameter:
        if self._parameters.get(name) is None:
            return alternative_value if alternative_value is not None else Parameter(name, Parameter.Type.NOT_SET)
        return Parameter(name, value=self._parameters[name])

    def add_on_set_parameters_callback(self, callback: Any) -> None:
        self._parameters_callbacks.insert(0, callback)

    def set_parameters(self, parameters: list[Parameter]) -> list:
        results = []
        for parameter in parameters:
            ok, reason = self._apply(parameter.name, parameter.value, self._descriptors[parameter.name])
            if ok:
                self._parameters[parameter.name] = parameter.value
            results.append(SetParametersResult(successful=ok, reason=reason))
        return results

    # entities
    def create_publisher(self, msg_type: type, topic: str, qos: Any) -> Publisher:
        publisher = Publisher(msg_type, topic, qos, lifecycle=False)
        self._publishers.append(publisher)
        return publisher

    def create_lifecycle_publisher(self, msg_type: type, topic: str, qos: Any) -> Publisher:
        publisher = Publisher(msg_type, topic, qos, lifecycle=True)
        self._publishers.append(publisher)
        return publisher

    def destroy_lifecycle_publisher(self, publisher: Publisher) -> None:
        publisher.destroyed = True
        self._publishers.remove(publisher)

    def create_subscription(self, msg_type: type, topic: str, callback: Any, qos: Any) -> Subscription:
        subscription = Subscription(msg_type, topic, callback, qos)
        self._subscriptions.append(subscription)
        return subscription

    def destroy_subscription(self, subscription: Subscription) -> None:
        self._subscriptions.remove(subscription)

    def create_timer(self, period: float, callback: Any, callback_group: Any = None, clock: Any = None) -> Timer:
        timer = Timer(period, callback, clock)
        self._timers.append(timer)
        return timer

    def destroy_timer(self, timer: Timer) -> None:
        self._timers.remove(timer)

    def get_logger(self) -> Logger:
        return self._logger

    def get_clock(self) -> Clock:
        return self._clock

    def get_fully_qualified_name(self) -> str:
        return "/" + self.name

    # the default transition callbacks: lifecycle publishers follow activate / deactivate
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for publisher in self._publishers:
            if publisher.lifecycle:
                publisher.enabled = True
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for publisher in self._publishers:
            if publisher.lifecycle:
                publisher.enabled = False
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS


class QoSProfile:
    def __init__(self, **kwargs: Any) -> None:
        assert "history" in kwargs or "depth" in kwargs, "History and/or depth settings are required."
        self.kwargs = kwargs


def _module(name: str, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def modules(*, with_vision_msgs: bool = True) -> dict[str, types.ModuleType]:
    """sys.modules entries to install (with monkeypatch) before importing hydranet_ros.ros.node."""
    qos = _module(
        "rclpy.qos", QoSProfile=QoSProfile,
        HistoryPolicy=enum.IntEnum("HistoryPolicy", {"SYSTEM_DEFAULT": 0, "KEEP_LAST": 1, "KEEP_ALL": 2}),
        ReliabilityPolicy=enum.IntEnum("ReliabilityPolicy", {"SYSTEM_DEFAULT": 0, "RELIABLE": 1, "BEST_EFFORT": 2}),
        DurabilityPolicy=enum.IntEnum("DurabilityPolicy", {"SYSTEM_DEFAULT": 0, "TRANSIENT_LOCAL": 1, "VOLATILE": 2}),
    )
    lifecycle = _module("rclpy.lifecycle", LifecycleNode=LifecycleNode, LifecycleState=LifecycleState,
                        TransitionCallbackReturn=TransitionCallbackReturn)
    exceptions = _module("rclpy.exceptions", ParameterException=ParameterException)
    clock = _module("rclpy.clock", Clock=Clock, ClockType=ClockType)
    parameter = _module("rclpy.parameter", Parameter=Parameter)
    found = {
        "rclpy": _module("rclpy", qos=qos, lifecycle=lifecycle, exceptions=exceptions, clock=clock, parameter=parameter),
        "rclpy.qos": qos,
        "rclpy.parameter": parameter,
        "rclpy.clock": clock,
        "rclpy.lifecycle": lifecycle,
        "rclpy.exceptions": exceptions,
        "rcl_interfaces": _module("rcl_interfaces"),
        "rcl_interfaces.msg": _module("rcl_interfaces.msg", ParameterDescriptor=ParameterDescriptor,
                                      IntegerRange=IntegerRange, FloatingPointRange=FloatingPointRange,
                                      SetParametersResult=SetParametersResult),
        "sensor_msgs": _module("sensor_msgs"),
        "sensor_msgs.msg": _module("sensor_msgs.msg", Image=Image, CompressedImage=CompressedImage,
                                   CameraInfo=CameraInfo, RegionOfInterest=RegionOfInterest,
                                   PointCloud2=PointCloud2, PointField=PointField),
        "diagnostic_msgs": _module("diagnostic_msgs"),
        "diagnostic_msgs.msg": _module("diagnostic_msgs.msg", DiagnosticArray=DiagnosticArray,
                                       DiagnosticStatus=DiagnosticStatus, KeyValue=KeyValue),
        "hydranet_ros.msg": _module("hydranet_ros.msg", HydraNetResult=HydraNetResult),
    }
    if with_vision_msgs:
        found["vision_msgs"] = _module("vision_msgs")
        found["vision_msgs.msg"] = _module("vision_msgs.msg", LabelInfo=LabelInfo, VisionClass=VisionClass)
    return found
