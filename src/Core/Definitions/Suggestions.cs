namespace Pipelines.Core.Definitions;

/// <summary>"Did you mean" for near misses: the closest candidate within a small edit distance.</summary>
public static class Suggestions
{
    public static string? Closest(string input, IEnumerable<string> candidates)
    {
        var limit = Math.Max(1, input.Length / 3);
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            var distance = Distance(input.ToLowerInvariant(), candidate.ToLowerInvariant());
            if (distance <= limit && distance < bestDistance)
            {
                best = candidate;
                bestDistance = distance;
            }
        }
        return best;
    }

    /// <summary><c>; did you mean 'x'?</c>, or nothing when no candidate is close.</summary>
    public static string DidYouMean(string input, IEnumerable<string> candidates) => DidYouMean(Closest(input, candidates));

    /// <summary><c>; did you mean 'x'?</c> for a match found with <see cref="Closest"/>, or nothing.</summary>
    public static string DidYouMean(string? match) => match is null ? "" : $"; did you mean '{match}'?";

    private static int Distance(string a, string b)
    {
        // Optimal string alignment distance: a swap of two neighbours counts as one edit ("dependson" ~ "depends_on").
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }
        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }
        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }
        return d[a.Length, b.Length];
    }
}
