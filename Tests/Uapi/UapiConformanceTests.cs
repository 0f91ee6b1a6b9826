using System.Globalization;
using System.Text;
using KernelModel.Uapi;

namespace KernelModel.Tests.Uapi;

/// <summary>
/// Holds <see cref="UapiTable"/> to linux/vfio.h: a C probe generated from the table is compiled against the header,
/// and the header text is read to check that the table leaves nothing out.
/// </summary>
public class UapiConformanceTests
{
    private static readonly Dictionary<string, Type> CTypes = new(StringComparer.Ordinal)
    {
        ["int"] = typeof(int),
        ["uint"] = typeof(uint),
        ["long"] = typeof(long),
        ["ulong"] = typeof(ulong),
    };

    [VfioToolchainFact]
    public async Task Probe_EveryConstantAndLayout_MatchesGcc()
    {
        VfioToolchain.Require(requiresGcc: true);
        var probe = await RunProbeAsync(GenerateProbe());
        var mismatches = new List<string>();

        foreach (var constant in UapiTable.ConstantDefinitions)
        {
            if (!probe.Constants.TryGetValue(constant.Name, out var c))
            {
                mismatches.Add($"constant {constant.Name}: not printed by the probe");
                continue;
            }

            if (c.Value != constant.Value)
            {
                mismatches.Add($"constant {constant.Name}: C# {constant.Value}, C {c.Value}");
            }

            if (!CTypes.TryGetValue(c.CType, out var expectedType) || expectedType != constant.ClrType)
            {
                mismatches.Add($"constant {constant.Name}: C# type {constant.ClrType.Name}, C type {c.CType}");
            }
        }

        foreach (var (name, value) in UapiTable.StringConstants)
        {
            if (!probe.Strings.TryGetValue(name, out string? c) || c != value)
            {
                mismatches.Add($"string {name}: C# \"{value}\", C \"{c}\"");
            }
        }

        foreach (var layout in UapiTable.Structs.Values)
        {
            if (probe.Sizes[layout.Name] != layout.Size)
            {
                mismatches.Add($"struct {layout.Name}: sizeof C# {layout.Size}, C {probe.Sizes[layout.Name]}");
            }

            foreach (var field in layout.Fields)
            {
                var (offset, size) = probe.Fields[(layout.Name, field.Name)];
                if (offset != field.Offset)
                {
                    mismatches.Add($"{layout.Name}.{field.Name}: offsetof C# {field.Offset}, C {offset}");
                }

                if (size != field.Size)
                {
                    mismatches.Add($"{layout.Name}.{field.Name}: sizeof C# {field.Size}, C {size}");
                }
            }

            if (layout.FlexibleArray is { } flex)
            {
                var (offset, size) = probe.Fields[(layout.Name, flex.Name)];
                if (offset != flex.Offset || size != flex.ElementSize)
                {
                    mismatches.Add($"{layout.Name}.{flex.Name}[]: offsetof/element size C# {flex.Offset}/{flex.ElementSize}, C {offset}/{size}");
                }
            }
        }

        for (uint state = 0; state < 8; state++)
        {
            var expected = (VfioUapi.VFIO_DEVICE_STATE_VALID(state), VfioUapi.VFIO_DEVICE_STATE_IS_ERROR(state), (long)VfioUapi.VFIO_DEVICE_STATE_SET_ERROR(state));
            if (probe.V1StateMacros[state] != expected)
            {
                mismatches.Add($"v1 state macros of {state}: C# {expected}, C {probe.V1StateMacros[state]}");
            }
        }

        Assert.True(mismatches.Count == 0, $"{mismatches.Count} uAPI mismatches against {VfioToolchain.HeaderPath}:\n" + string.Join('\n', mismatches));
    }

    [VfioToolchainFact(requiresGcc: false)]
    public void Header_EveryVfioIntegerDefineAndEnumerator_IsInTable()
    {
        VfioToolchain.Require(requiresGcc: false);
        var header = VfioHeaderText.Load(VfioToolchain.HeaderPath);

        var missing = header.IntegerConstants.Where(n => !UapiTable.Constants.ContainsKey(n)).Distinct().ToList();
        var extra = UapiTable.Constants.Keys.Except(header.IntegerConstants).ToList();
        var missingStrings = header.StringDefines.Where(n => !UapiTable.StringConstants.ContainsKey(n)).ToList();
        var missingMacros = header.FunctionMacros.Where(n => typeof(VfioUapi).GetMethod(n) is null).ToList();

        Assert.True(
            missing.Count + extra.Count + missingStrings.Count + missingMacros.Count == 0,
            $"integer constants missing from UapiTable: [{string.Join(", ", missing)}]\n"
            + $"in UapiTable but not in the header: [{string.Join(", ", extra)}]\n"
            + $"string constants missing: [{string.Join(", ", missingStrings)}]\n"
            + $"function-like macros without a VfioUapi method: [{string.Join(", ", missingMacros)}]");
    }

    [VfioToolchainFact(requiresGcc: false)]
    public void Header_EveryVfioStructAndMember_IsInTable()
    {
        VfioToolchain.Require(requiresGcc: false);
        var header = VfioHeaderText.Load(VfioToolchain.HeaderPath);
        var problems = new List<string>();

        foreach (var c in header.Structs)
        {
            if (!UapiTable.Structs.TryGetValue(c.Name, out var layout))
            {
                problems.Add($"struct {c.Name}: missing");
                continue;
            }

            var members = layout.Fields.Select(f => f.Name).ToList();
            if (!members.SequenceEqual(c.Members))
            {
                problems.Add($"struct {c.Name}: members C# [{string.Join(", ", members)}], C [{string.Join(", ", c.Members)}]");
            }

            if (layout.FlexibleArray?.Name != c.FlexibleArray)
            {
                problems.Add($"struct {c.Name}: flexible array C# {layout.FlexibleArray?.Name ?? "none"}, C {c.FlexibleArray ?? "none"}");
            }
        }

        foreach (string name in UapiTable.Structs.Keys.Except(header.Structs.Select(s => s.Name)))
        {
            problems.Add($"struct {name}: in UapiTable but not in the header");
        }

        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    private static string GenerateProbe()
    {
        var c = new StringBuilder();
        c.AppendLine("#include <stdio.h>");
        c.AppendLine("#include <stddef.h>");
        c.AppendLine(CultureInfo.InvariantCulture, $"#include \"{VfioToolchain.HeaderPath}\"");
        c.AppendLine("#define CTYPE(x) _Generic((x), int: \"int\", unsigned int: \"uint\", long: \"long\", unsigned long: \"ulong\", "
            + "long long: \"long\", unsigned long long: \"ulong\", default: \"other\")");
        c.AppendLine("int main(void) {");
        foreach (string name in UapiTable.Constants.Keys)
        {
            c.AppendLine(CultureInfo.InvariantCulture, $"  printf(\"const %s %s %lld\\n\", \"{name}\", CTYPE({name}), (long long)({name}));");
        }

        foreach (string name in UapiTable.StringConstants.Keys)
        {
            c.AppendLine(CultureInfo.InvariantCulture, $"  printf(\"string %s %s\\n\", \"{name}\", {name});");
        }

        foreach (var layout in UapiTable.Structs.Values)
        {
            string s = $"struct {layout.Name}";
            c.AppendLine(CultureInfo.InvariantCulture, $"  printf(\"sizeof %s %zu\\n\", \"{layout.Name}\", sizeof({s}));");
            foreach (var field in layout.Fields)
            {
                c.AppendLine(CultureInfo.InvariantCulture,
                    $"  printf(\"field %s %s %zu %zu\\n\", \"{layout.Name}\", \"{field.Name}\", offsetof({s}, {field.Name}), sizeof((({s} *)0)->{field.Name}));");
            }

            if (layout.FlexibleArray is { } flex)
            {
                c.AppendLine(CultureInfo.InvariantCulture,
                    $"  printf(\"field %s %s %zu %zu\\n\", \"{layout.Name}\", \"{flex.Name}\", offsetof({s}, {flex.Name}), sizeof((({s} *)0)->{flex.Name}[0]));");
            }
        }

        c.AppendLine("  for (unsigned s = 0; s < 8; s++)");
        c.AppendLine("    printf(\"v1state %u %d %d %lld\\n\", s, VFIO_DEVICE_STATE_VALID(s), VFIO_DEVICE_STATE_IS_ERROR(s), (long long)VFIO_DEVICE_STATE_SET_ERROR(s));");
        c.AppendLine("  return 0;");
        c.AppendLine("}");
        return c.ToString();
    }

    private static async Task<ProbeOutput> RunProbeAsync(string source)
    {
        var dir = System.IO.Directory.CreateTempSubdirectory("kmodel-uapi-probe-");
        try
        {
            string c = System.IO.Path.Combine(dir.FullName, "probe.c");
            string exe = System.IO.Path.Combine(dir.FullName, "probe");
            await System.IO.File.WriteAllTextAsync(c, source);

            var (cc, _, ccErr) = await VfioToolchain.RunAsync(VfioToolchain.GccPath!, "-std=gnu11", "-O0", "-o", exe, c);
            Assert.True(cc == 0, $"gcc could not compile the probe generated from UapiTable (a name the header lacks?):\n{ccErr}");

            var (rc, stdout, stderr) = await VfioToolchain.RunAsync(exe);
            Assert.True(rc == 0, $"the probe exited with {rc}:\n{stderr}");
            return ProbeOutput.Parse(stdout);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private sealed class ProbeOutput
    {
        public Dictionary<string, (string CType, long Value)> Constants { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, string> Strings { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, int> Sizes { get; } = new(StringComparer.Ordinal);

        public Dictionary<(string Struct, string Field), (int Offset, int Size)> Fields { get; } = [];

        public Dictionary<uint, (int Valid, int IsError, long SetError)> V1StateMacros { get; } = [];

        public static ProbeOutput Parse(string stdout)
        {
            var output = new ProbeOutput();
            var inv = CultureInfo.InvariantCulture;
            foreach (string line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                string[] p = line.Split(' ');
                switch (p[0])
                {
                    case "const":
                        output.Constants[p[1]] = (p[2], long.Parse(p[3], inv));
                        break;
                    case "string":
                        output.Strings[p[1]] = p[2];
                        break;
                    case "sizeof":
                        output.Sizes[p[1]] = int.Parse(p[2], inv);
                        break;
                    case "field":
                        output.Fields[(p[1], p[2])] = (int.Parse(p[3], inv), int.Parse(p[4], inv));
                        break;
                    case "v1state":
                        output.V1StateMacros[uint.Parse(p[1], inv)] = (int.Parse(p[2], inv), int.Parse(p[3], inv), long.Parse(p[4], inv));
                        break;
                    default:
                        throw new FormatException($"unexpected probe line: {line}");
                }
            }

            return output;
        }
    }
}
