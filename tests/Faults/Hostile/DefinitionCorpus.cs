using System.Globalization;
using System.Text;

namespace Pipelines.Faults.Hostile;

/// <summary>A malformed definition file and the error it must produce: at <see cref="Line"/>:<see cref="Column"/>, saying <see cref="Says"/>.</summary>
internal sealed record BadDefinition(string Family, string Name, byte[] Content, int Line, int Column, string Says);

/// <summary>
/// Generates malformed definition files from a seed. Each family breaks a valid file in one place and
/// computes where that place is — line and column are derived from the text it wrote, not typed in —
/// so the loader's answer can be checked exactly.
/// </summary>
internal static class DefinitionCorpus
{
    public static IReadOnlyList<BadDefinition> Generate(int seed)
    {
        var random = new Random(seed);
        var cases = new List<BadDefinition>();
        void Add(string family, int count, Func<int, BadDefinition> make)
        {
            for (var i = 0; i < count; i++)
            {
                cases.Add(make(i));
            }
        }

        string[] unknownKeys = ["dependson", "handlr", "timout", "retries", "imgae", "comand", "enviroment", "sidecar", "volume", "lables", "privileged", "cap_add", "devices", "pid", "ipc", "security_opt"];
        Add("unknown-step-key", unknownKeys.Length, i =>
        {
            var doc = Valid(random, out var steps);
            var at = doc.InsertAfter(doc.HandlerLine(random.Next(steps)), $"        {unknownKeys[i]}: x");
            return doc.Case("unknown-step-key", i, at, 9, $"unknown key '{unknownKeys[i]}'");
        });

        string[] durations = ["10 minutes", "5 parsecs", "soon", "1x", "s10", "--5s", "5 s s", "1h30", "PT5M", "1e3s", "forever", "10.5.1s"];
        Add("bad-duration", durations.Length, i =>
        {
            var doc = Valid(random, out var steps);
            var at = doc.InsertAfter(doc.HandlerLine(random.Next(steps)), $"        timeout: {durations[i]}");
            return doc.Case("bad-duration", i, at, 18, "'timeout'");
        });

        string[] crons = ["61 * * * *", "* * *", "@hourly2", "*/0 * * * *", "0 0 32 * *", "0 0 * 13 *", "0 0 * * 8", "a b c d e", "* * * * * * * * *", "0 25 * * *", "-1 * * * *", "0 0 * * MON-XYZ"];
        Add("bad-cron", crons.Length, i =>
        {
            var doc = Valid(random, out _);
            doc.Append("    schedules:");
            doc.Append($"      - name: every-{i}");
            var at = doc.Append($"        cron: \"{crons[i]}\"");
            return doc.Case("bad-cron", i, at, 15, "cron");
        });

        Add("unknown-dependency", 10, i =>
        {
            var doc = Valid(random, out var steps);
            var missing = $"ghost{random.Next(1000)}";
            doc.Append($"      - name: orphan{i}");
            doc.Append($"        handler: h.orphan{i}");
            var at = doc.Append($"        depends_on: [{missing}]");
            return doc.Case("unknown-dependency", i, at, 22, $"unknown step '{missing}'");
        });

        Add("cycle", 10, i =>
        {
            var doc = Valid(random, out var steps);
            var length = 2 + (i % 5);
            var first = 0;
            for (var c = 0; c < length; c++)
            {
                var name = $"c{c}";
                doc.Append($"      - name: {name}");
                doc.Append($"        handler: cycle.{name}");
                var line = doc.Append($"        depends_on: [c{(c + 1) % length}]");
                if (c == 0)
                {
                    first = line;
                }
            }
            return doc.Case("cycle", i, first, 22, "dependency cycle");
        });

        Add("duplicate-step-name", 10, i =>
        {
            var doc = Valid(random, out var steps);
            var twin = $"s{random.Next(steps)}";
            var at = doc.Append($"      - name: {twin}");
            doc.Append("        handler: twin.again");
            return doc.Case("duplicate-step-name", i, at, 15, $"duplicate step name '{twin}'");
        });

        Add("missing-variable", 10, i =>
        {
            var doc = Valid(random, out _);
            var prefix = $"        image: registry.example.com/team{i}/loader:";
            doc.Append($"      - name: load{i}");
            var at = doc.Append($"{prefix}${{MISSING_TAG_{i}}}");
            return doc.Case("missing-variable", i, at, prefix.Length + 1, $"variable 'MISSING_TAG_{i}' is not set");
        });

        Add("tab-indentation", 10, i =>
        {
            var doc = Valid(random, out var steps);
            var line = doc.HandlerLine(random.Next(steps));
            doc.Replace(line, "\t" + doc.Lines[line - 1].TrimStart(' '));
            return doc.Case("tab-indentation", i, line, 1, "tab character in indentation");
        });

        Add("unclosed-quote", 8, i =>
        {
            var doc = Valid(random, out var steps);
            var at = doc.InsertAfter(doc.HandlerLine(random.Next(steps - 1)), $"        description: \"never closed {i}");
            return doc.Case("unclosed-quote", i, at, 22, "YAML syntax error");
        });

        Add("unclosed-flow-list", 8, i =>
        {
            var doc = Valid(random, out var steps);
            doc.Append($"      - name: last{i}");
            doc.Append($"        handler: h.last{i}");
            var at = doc.Append($"        depends_on: [s0, s{random.Next(steps)}");
            return doc.Case("unclosed-flow-list", i, at, 21, "'[' is never closed");
        });

        byte[] badBytes = [0xC0, 0xE9, 0xFF, 0x80, 0xFE, 0xC3, 0xF8, 0xA0, 0xED, 0xF4];
        Add("not-utf8", badBytes.Length, i =>
        {
            var doc = Valid(random, out var steps);
            var text = $"        description: caf";
            var at = doc.InsertAfter(doc.HandlerLine(random.Next(steps)), text + "\u0001");
            var bytes = Encoding.UTF8.GetBytes(doc.Text());
            bytes[Array.IndexOf(bytes, (byte)0x01)] = badBytes[i];
            // A lead byte followed by a newline is as invalid as a stray continuation byte: the error is at the byte itself.
            return new BadDefinition("not-utf8", $"not-utf8-{i:D2}.yaml", bytes, at, text.Length + 1, $"not valid UTF-8 (byte 0x{badBytes[i]:X2})");
        });

        int[] flowDepths = [65, 100, 1_000, 10_000];
        Add("deep-flow-nesting", flowDepths.Length * 2, i =>
        {
            var key = i % 2 == 0 ? "x-deep" : "x-very-deep-nesting";
            var depth = flowDepths[i / 2];
            var text = $"{key}: {new string('[', depth)}{new string(']', depth)}\npipelines: {{}}\n";
            return new BadDefinition("deep-flow-nesting", $"deep-flow-{i:D2}.yaml", Encoding.UTF8.GetBytes(text), 1, key.Length + 2 + 64, "nesting deeper than 64 levels");
        });

        int[] blockDepths = [66, 200, 1_000, 1_500];
        Add("deep-block-nesting", blockDepths.Length, i =>
        {
            var text = new StringBuilder();
            for (var level = 0; level < blockDepths[i]; level++)
            {
                text.Append(' ', level * 2).Append("nested:\n");
            }
            return new BadDefinition("deep-block-nesting", $"deep-block-{i:D2}.yaml", Encoding.UTF8.GetBytes(text.ToString()), 65, 129, "nesting deeper than 64 levels");
        });

        int[] fanOuts = [10, 12, 16, 20, 32, 50];
        Add("alias-bomb", fanOuts.Length, i =>
        {
            // Each level is a list of k aliases of the one before: level n expands to 1 + k * (level n-1) nodes.
            // The first level past 1,000,000 is refused where its node starts (its anchor).
            var text = new StringBuilder();
            long size = 1;
            for (var level = 1; ; level++)
            {
                var name = $"lvl{level}{new string('x', i)}";
                var prefix = $"x-{name}: ";
                var item = level == 1 ? "lol" : $"*lvl{level - 1}{new string('x', i)}";
                text.Append(prefix).Append('&').Append(name).Append(" [").AppendJoin(", ", Enumerable.Repeat(item, fanOuts[i])).Append("]\n");
                size = 1 + fanOuts[i] * size;
                if (size > 1_000_000)
                {
                    text.Append("pipelines:\n  bomb:\n    steps:\n      - { name: boom, handler: boom }\n");
                    return new BadDefinition("alias-bomb", $"alias-bomb-{i:D2}.yaml", Encoding.UTF8.GetBytes(text.ToString()), level, prefix.Length + 1, "expands to more than 1,000,000 nodes");
                }
            }
        });

        long[] sizes = [4 * 1024 * 1024 + 1, 5_000_000, 8_000_000, 10_000_000, 10 * 1024 * 1024];
        Add("huge-file", sizes.Length, i =>
        {
            var content = new byte[sizes[i]];
            "pipelines:\n"u8.CopyTo(content);
            var filler = "# padding a careless generator might emit\n"u8.ToArray();
            for (var offset = 11; offset < content.Length; offset += filler.Length)
            {
                filler.AsSpan(0, (int)Math.Min(filler.Length, content.Length - offset)).CopyTo(content.AsSpan(offset));
            }
            return new BadDefinition("huge-file", $"huge-{i:D2}.yaml", content, 1, 1, $"the file is {sizes[i].ToString("N0", CultureInfo.InvariantCulture)} bytes");
        });

        string[] twiceKeys = ["timeout: 30s", "handler: h.twice", "pool: p", "description: twice"];
        Add("duplicate-key", 8, i =>
        {
            var doc = Valid(random, out var steps);
            var line = doc.HandlerLine(random.Next(steps));
            var key = twiceKeys[i % twiceKeys.Length];
            var first = key.StartsWith("handler", StringComparison.Ordinal) ? line : doc.InsertAfter(line, $"        {key}");
            var at = doc.InsertAfter(first, $"        {key}");
            return doc.Case("duplicate-key", i, at, 9, $"duplicate key '{key.Split(':')[0]}'");
        });

        string[] badNames = ["load data", "-lead", "a/b", new string('x', 101), "semi;colon", "comma,name", "_under", "na$me"];
        Add("invalid-step-name", badNames.Length, i =>
        {
            var doc = Valid(random, out _);
            var at = doc.Append($"      - name: \"{badNames[i]}\"");
            doc.Append("        handler: h.bad");
            return doc.Case("invalid-step-name", i, at, 15, "a step name is");
        });

        string[] attempts = ["three", "1.5", "true", "[1]", "0x10", "many"];
        Add("retry-attempts", attempts.Length, i =>
        {
            var doc = Valid(random, out var steps);
            var retry = doc.InsertAfter(doc.HandlerLine(random.Next(steps)), "        retry:");
            var at = doc.InsertAfter(retry, $"          attempts: {attempts[i]}");
            return doc.Case("retry-attempts", i, at, 21, "'retry.attempts'");
        });

        string[] topKeys = ["pipeline", "pipelnes", "version", "settings", "Pipelines", "workers"];
        Add("unknown-top-level-key", topKeys.Length, i =>
        {
            var doc = Valid(random, out _);
            doc.Insert(1, $"{topKeys[i]}: 1");
            return doc.Case("unknown-top-level-key", i, 1, 1, $"unknown key '{topKeys[i]}'");
        });

        Add("handler-and-image", 6, i =>
        {
            var doc = Valid(random, out var steps);
            var at = doc.InsertAfter(doc.HandlerLine(random.Next(steps)), "        image: alpine");
            return doc.Case("handler-and-image", i, at, 9, "has both 'handler' and 'image'");
        });

        (string Name, byte[] Bom, byte First)[] boms = [("utf16le", [0xFF, 0xFE], 0xFF), ("utf16be", [0xFE, 0xFF], 0xFE), ("utf32le", [0xFF, 0xFE, 0x00, 0x00], 0xFF)];
        Add("utf16-utf32", boms.Length, i =>
        {
            var encoding = boms[i].Name switch
            {
                "utf16le" => Encoding.Unicode,
                "utf16be" => Encoding.BigEndianUnicode,
                _ => Encoding.UTF32,
            };
            var body = encoding.GetBytes("pipelines:\n  p:\n    steps:\n      - { name: a, handler: h.a }\n");
            return new BadDefinition("utf16-utf32", $"{boms[i].Name}.yaml", [.. boms[i].Bom, .. body], 1, 1, $"(byte 0x{boms[i].First:X2})");
        });

        return cases;
    }

    /// <summary>A valid file of one pipeline with 2-6 handler steps named s0, s1, ...</summary>
    private static Document Valid(Random random, out int steps)
    {
        steps = random.Next(2, 7);
        var doc = new Document();
        doc.Append("pipelines:");
        doc.Append($"  p{random.Next(100)}:");
        doc.Append("    steps:");
        for (var s = 0; s < steps; s++)
        {
            doc.Append($"      - name: s{s}");
            doc.Append($"        handler: h.s{s}");
            if (s > 0 && random.Next(2) == 0)
            {
                doc.Append($"        depends_on: [s{random.Next(s)}]");
            }
        }
        return doc;
    }

    /// <summary>Lines of a definition file being built, with 1-based line numbers.</summary>
    private sealed class Document
    {
        public List<string> Lines { get; } = [];

        public int Append(string line)
        {
            Lines.Add(line);
            return Lines.Count;
        }

        public int Insert(int lineNumber, string line)
        {
            Lines.Insert(lineNumber - 1, line);
            return lineNumber;
        }

        /// <summary>Inserts a line after line <paramref name="lineNumber"/>; returns its number.</summary>
        public int InsertAfter(int lineNumber, string line) => Insert(lineNumber + 1, line);

        public void Replace(int lineNumber, string line) => Lines[lineNumber - 1] = line;

        /// <summary>The line of step <c>s{index}</c>'s <c>handler:</c>.</summary>
        public int HandlerLine(int index) => Lines.IndexOf($"        handler: h.s{index}") + 1;

        public string Text() => string.Join('\n', Lines) + "\n";

        public BadDefinition Case(string family, int index, int line, int column, string says) =>
            new(family, $"{family}-{index:D2}.yaml", Encoding.UTF8.GetBytes(Text()), line, column, says);
    }
}
