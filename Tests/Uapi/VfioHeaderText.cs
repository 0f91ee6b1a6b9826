using System.Text.RegularExpressions;

namespace KernelModel.Tests.Uapi;

/// <summary>
/// Just enough of a C reader for linux/vfio.h to list what it declares: object-like <c>#define VFIO_*</c> macros
/// (integer or string), function-like ones, <c>VFIO_*</c> enumerators, and each <c>struct vfio_*</c> with its direct
/// members (anonymous union members count as direct, as they do for <c>offsetof</c>).
/// </summary>
internal sealed partial class VfioHeaderText
{
    private VfioHeaderText(string text)
    {
        // Comments out, line continuations joined: each #define is then one line.
        text = BlockComment().Replace(text, " ");
        text = LineComment().Replace(text, string.Empty);
        text = text.Replace("\\\n", " ", StringComparison.Ordinal);

        foreach (Match m in Define().Matches(text))
        {
            string name = m.Groups["name"].Value;
            string body = m.Groups["body"].Value.Trim();
            if (m.Groups["fn"].Success)
            {
                FunctionMacros.Add(name);
            }
            else if (body.StartsWith('"'))
            {
                StringDefines.Add(name);
            }
            else if (body.Length > 0)
            {
                IntegerConstants.Add(name);
            }

            // An empty body is the include guard (VFIO_H): no value.
        }

        foreach (Match m in Enum().Matches(text))
        {
            foreach (string member in m.Groups["body"].Value.Split(','))
            {
                var id = Identifier().Match(member.Trim());
                if (id.Success && id.Value.StartsWith("VFIO_", StringComparison.Ordinal))
                {
                    IntegerConstants.Add(id.Value);
                }
            }
        }

        foreach (Match m in StructOpen().Matches(text))
        {
            Structs.Add(ReadStruct(m.Groups["name"].Value, text, m.Index + m.Length - 1));
        }
    }

    public List<string> IntegerConstants { get; } = [];

    public List<string> StringDefines { get; } = [];

    public List<string> FunctionMacros { get; } = [];

    public List<CStruct> Structs { get; } = [];

    public static VfioHeaderText Load(string path) => new(System.IO.File.ReadAllText(path));

    private static CStruct ReadStruct(string name, string text, int openBrace)
    {
        int depth = 0;
        int end = openBrace;
        for (; end < text.Length; end++)
        {
            if (text[end] == '{')
            {
                depth++;
            }
            else if (text[end] == '}' && --depth == 0)
            {
                break;
            }
        }

        string body = text[(openBrace + 1)..end];
        body = string.Join('\n', body.Split('\n').Where(line => !line.TrimStart().StartsWith('#')));
        body = AggregateOpen().Replace(body, " ").Replace('}', ' ');

        var members = new List<string>();
        string? flexible = null;
        foreach (string declaration in body.Split(';'))
        {
            var m = MemberName().Match(declaration);
            if (!m.Success)
            {
                continue;
            }

            if (m.Groups["flex"].Success)
            {
                flexible = m.Groups["name"].Value;
            }
            else
            {
                members.Add(m.Groups["name"].Value);
            }
        }

        return new CStruct(name, members, flexible);
    }

    [GeneratedRegex(@"/\*.*?\*/", RegexOptions.Singleline)]
    private static partial Regex BlockComment();

    [GeneratedRegex(@"//[^\n]*")]
    private static partial Regex LineComment();

    [GeneratedRegex(@"^[ \t]*#[ \t]*define[ \t]+(?<name>VFIO_\w+)(?<fn>\()?(?<body>[^\n]*)$", RegexOptions.Multiline)]
    private static partial Regex Define();

    [GeneratedRegex(@"\benum\b[^{;]*\{(?<body>[^}]*)\}")]
    private static partial Regex Enum();

    [GeneratedRegex(@"^\w+")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"\bstruct\s+(?<name>vfio_\w+)\s*\{")]
    private static partial Regex StructOpen();

    [GeneratedRegex(@"\b(union|struct)\s*\{")]
    private static partial Regex AggregateOpen();

    [GeneratedRegex(@"(?<name>\w+)\s*(\[\s*(?<flex>)\]|\[\s*\w+\s*\])?\s*$")]
    private static partial Regex MemberName();
}

internal sealed record CStruct(string Name, IReadOnlyList<string> Members, string? FlexibleArray);
