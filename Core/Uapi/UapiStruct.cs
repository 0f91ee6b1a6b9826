using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace KernelModel.Uapi;

/// <summary>
/// Reads and writes uAPI structs from and to the <see cref="Span{T}"/> an ioctl receives, without allocating.
/// Bytes are in host order, as the kernel sees a user struct. Unaligned buffers are fine.
/// </summary>
public static class UapiStruct
{
    /// <summary>C's <c>sizeof</c> of the struct: its fixed part, without any flexible array member.</summary>
    /// <typeparam name="T">A uAPI struct.</typeparam>
    public static int SizeOf<T>()
        where T : unmanaged => Unsafe.SizeOf<T>();

    /// <summary>Reads a whole struct from the start of <paramref name="source"/>.</summary>
    /// <typeparam name="T">A uAPI struct.</typeparam>
    /// <param name="source">The user bytes.</param>
    /// <param name="value">The struct, or default when the source is shorter than it.</param>
    /// <returns>False when <paramref name="source"/> is shorter than <c>sizeof(T)</c>.</returns>
    public static bool TryRead<T>(ReadOnlySpan<byte> source, out T value)
        where T : unmanaged => MemoryMarshal.TryRead(source, out value);

    /// <summary>Writes a whole struct at the start of <paramref name="destination"/>.</summary>
    /// <typeparam name="T">A uAPI struct.</typeparam>
    /// <param name="destination">The user bytes.</param>
    /// <param name="value">The struct.</param>
    /// <returns>False (and nothing written) when <paramref name="destination"/> is shorter than <c>sizeof(T)</c>.</returns>
    public static bool TryWrite<T>(Span<byte> destination, in T value)
        where T : unmanaged => MemoryMarshal.TryWrite(destination, in value);

    /// <summary>Writes a whole struct at the start of <paramref name="destination"/>.</summary>
    /// <typeparam name="T">A uAPI struct.</typeparam>
    /// <param name="destination">The user bytes.</param>
    /// <param name="value">The struct.</param>
    /// <exception cref="ArgumentOutOfRangeException">The destination is shorter than <c>sizeof(T)</c>.</exception>
    public static void Write<T>(Span<byte> destination, in T value)
        where T : unmanaged => MemoryMarshal.Write(destination, in value);

    /// <summary>
    /// Like <c>copy_from_user(&amp;s, arg, minsz)</c> in an ioctl handler: copies exactly the first
    /// <paramref name="minsz"/> bytes (usually <c>offsetofend</c> of the last field the ioctl always had) and
    /// leaves the rest of the struct zero, so bytes a newer caller appended are not read by accident.
    /// Checking <c>argsz</c> stays the handler's job.
    /// </summary>
    /// <typeparam name="T">A uAPI struct.</typeparam>
    /// <param name="arg">The user bytes.</param>
    /// <param name="minsz">Bytes to copy; at most <c>sizeof(T)</c>.</param>
    /// <param name="value">The struct, zero beyond <paramref name="minsz"/>.</param>
    /// <returns>False when <paramref name="arg"/> is shorter than <paramref name="minsz"/> (the kernel's EFAULT).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="minsz"/> is negative or larger than the struct.</exception>
    public static bool TryCopyFromUser<T>(ReadOnlySpan<byte> arg, int minsz, out T value)
        where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(minsz);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minsz, Unsafe.SizeOf<T>());
        value = default;
        if (arg.Length < minsz)
        {
            return false;
        }

        arg[..minsz].CopyTo(MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref value, 1)));
        return true;
    }

    /// <summary>
    /// Like <c>copy_to_user(arg, &amp;s, count)</c>: writes the first <paramref name="count"/> bytes of the struct,
    /// so a handler can return only what the caller's <c>argsz</c> has room for.
    /// </summary>
    /// <typeparam name="T">A uAPI struct.</typeparam>
    /// <param name="arg">The user bytes.</param>
    /// <param name="value">The struct.</param>
    /// <param name="count">Bytes to write; at most <c>sizeof(T)</c>.</param>
    /// <returns>False (and nothing written) when <paramref name="arg"/> is shorter than <paramref name="count"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is negative or larger than the struct.</exception>
    public static bool TryCopyToUser<T>(Span<byte> arg, in T value, int count)
        where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, Unsafe.SizeOf<T>());
        if (arg.Length < count)
        {
            return false;
        }

        MemoryMarshal.AsBytes(MemoryMarshal.CreateReadOnlySpan(in value, 1))[..count].CopyTo(arg);
        return true;
    }

    /// <summary>
    /// The bytes after the fixed part of <typeparamref name="T"/>: where its flexible array member
    /// (<see cref="FlexibleArrayAttribute"/>) starts. In linux/vfio.h that offset equals <c>sizeof</c> for every
    /// such struct, and the conformance tests hold it to that.
    /// </summary>
    /// <typeparam name="T">A uAPI struct with a flexible array member.</typeparam>
    /// <param name="buffer">The whole user buffer, struct first.</param>
    /// <exception cref="ArgumentOutOfRangeException">The buffer is shorter than <c>sizeof(T)</c>.</exception>
    public static Span<byte> Trailing<T>(Span<byte> buffer)
        where T : unmanaged => buffer[Unsafe.SizeOf<T>()..];

    /// <summary>Read-only form of <see cref="Trailing{T}(Span{byte})"/>.</summary>
    /// <typeparam name="T">A uAPI struct with a flexible array member.</typeparam>
    /// <param name="buffer">The whole user buffer, struct first.</param>
    /// <exception cref="ArgumentOutOfRangeException">The buffer is shorter than <c>sizeof(T)</c>.</exception>
    public static ReadOnlySpan<byte> Trailing<T>(ReadOnlySpan<byte> buffer)
        where T : unmanaged => buffer[Unsafe.SizeOf<T>()..];

    /// <summary>Reads element <paramref name="index"/> of an array of <typeparamref name="T"/> packed in <paramref name="source"/>.</summary>
    /// <typeparam name="T">The element type (e.g. <see cref="VfioIovaRange"/>, <see cref="int"/> for an eventfd).</typeparam>
    /// <param name="source">The array bytes, e.g. from <see cref="Trailing{T}(ReadOnlySpan{byte})"/>.</param>
    /// <param name="index">Element index.</param>
    /// <param name="value">The element, or default.</param>
    /// <returns>False when the element is not wholly inside <paramref name="source"/>.</returns>
    public static bool TryReadElement<T>(ReadOnlySpan<byte> source, int index, out T value)
        where T : unmanaged
    {
        int size = Unsafe.SizeOf<T>();
        if (index < 0 || index >= source.Length / size)
        {
            value = default;
            return false;
        }

        return MemoryMarshal.TryRead(source[(index * size)..], out value);
    }

    /// <summary>Writes element <paramref name="index"/> of an array of <typeparamref name="T"/> packed in <paramref name="destination"/>.</summary>
    /// <typeparam name="T">The element type.</typeparam>
    /// <param name="destination">The array bytes, e.g. from <see cref="Trailing{T}(Span{byte})"/>.</param>
    /// <param name="index">Element index.</param>
    /// <param name="value">The element.</param>
    /// <returns>False (and nothing written) when the element is not wholly inside <paramref name="destination"/>.</returns>
    public static bool TryWriteElement<T>(Span<byte> destination, int index, in T value)
        where T : unmanaged
    {
        int size = Unsafe.SizeOf<T>();
        if (index < 0 || index >= destination.Length / size)
        {
            return false;
        }

        return MemoryMarshal.TryWrite(destination[(index * size)..], in value);
    }
}
