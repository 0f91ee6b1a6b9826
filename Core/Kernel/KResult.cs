namespace KernelModel.Kernel;

/// <summary>
/// The outcome of a fallible kernel-internal call that produces no value: success or an errno.
/// Expected failures travel as values, never as exceptions (shared/DESIGN.md).
/// </summary>
public readonly record struct KResult(Errno Error)
{
    /// <summary>Success.</summary>
    public static KResult Ok => default;

    /// <summary>True when the call succeeded.</summary>
    public bool IsOk => Error == Errno.None;

    /// <summary>The syscall-boundary form: 0, or the negative errno.</summary>
    public int ToSyscall() => -(int)Error;

    /// <summary>Wraps an errno as a failed result.</summary>
    public static implicit operator KResult(Errno error) => new(error);
}

/// <summary>The outcome of a fallible kernel-internal call: a value, or an errno.</summary>
public readonly struct KResult<T>
{
    private readonly T? _value;

    private KResult(T? value, Errno error)
    {
        _value = value;
        Error = error;
    }

    /// <summary>The errno; <see cref="Errno.None"/> on success.</summary>
    public Errno Error { get; }

    /// <summary>True when the call succeeded.</summary>
    public bool IsOk => Error == Errno.None;

    /// <summary>The value; only meaningful when <see cref="IsOk"/>.</summary>
    public T Value => IsOk ? _value! : throw new InvalidOperationException($"result is an error ({Error})");

    /// <summary>Returns true and the value on success.</summary>
    public bool TryGetValue(out T value)
    {
        value = _value!;
        return IsOk;
    }

    /// <summary>A successful result.</summary>
    public static KResult<T> Success(T value) => new(value, Errno.None);

    /// <summary>A failed result.</summary>
    public static KResult<T> Fail(Errno error) =>
        error == Errno.None ? throw new ArgumentException("a failure needs an errno", nameof(error)) : new(default, error);

    /// <summary>Wraps a value as a successful result.</summary>
    public static implicit operator KResult<T>(T value) => Success(value);

    /// <summary>Wraps an errno as a failed result.</summary>
    public static implicit operator KResult<T>(Errno error) => Fail(error);

    /// <inheritdoc />
    public override string ToString() => IsOk ? $"Ok({_value})" : Error.ToString();
}
