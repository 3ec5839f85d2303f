// Short explanations written for this set, used by the question-and-answer dialogues.

export const GLOSSARY = [
  ['What is a prime number?', 'A prime number is a whole number greater than 1 whose only divisors are 1 and itself. 2, 3, 5, 7 and 11 are prime; 9 is not, because 3 × 3 = 9. Every whole number above 1 can be written as a product of primes in exactly one way, apart from the order of the factors.'],
  ['How does binary search work?', 'Binary search finds a value in a sorted list by repeatedly halving the part that could still contain it. You compare the target with the middle element: if the target is smaller, you keep the left half; if larger, the right half. Each step discards half of what remains, so a list of a million items needs at most about twenty comparisons.'],
  ['What is compound interest?', 'Compound interest is interest paid on the interest you have already earned. If you deposit 100 at 5% a year, you have 105 after one year, and the next year 5% is paid on 105, not on 100, giving 110.25. Over many years the difference grows large, because the balance is multiplied by the same factor every period.'],
  ['Why do we round half to even?', 'Rounding half to even sends a value exactly halfway between two candidates to the even one: 2.5 becomes 2 and 3.5 becomes 4. Always rounding halves up pushes sums upward a little each time; rounding to even sends half of the ties up and half down, so the errors cancel on average. It is the default in IEEE floating point for that reason.'],
  ['What is a hash table?', 'A hash table stores key-value pairs in an array. A hash function turns each key into an index, so looking a key up usually takes constant time: compute the hash, go to that slot, compare. When two keys land in the same slot, the table either keeps a short list there or probes the next free slot. It grows and rehashes when it gets too full.'],
  ['What does photosynthesis do?', 'Photosynthesis is how plants, algae and some bacteria use the energy of light to turn carbon dioxide and water into sugar, releasing oxygen as a by-product. The sugar feeds the plant and is the starting point of almost every food chain on land.'],
  ['What is the difference between weather and climate?', 'Weather is what the atmosphere is doing at a given place and time: today it is windy and 14 degrees. Climate is the long-term pattern of weather in a region, usually described by averages and ranges over thirty years or more. A cold week says little about the climate; a trend over decades does.'],
  ['What is a variable in programming?', 'A variable is a name that refers to a value stored in memory. You can read the value through the name and, in most languages, assign a new value to it later. Good variable names say what the value means, such as total_price or retries_left, rather than what type it has.'],
  ['What is recursion?', 'Recursion is when a function solves a problem by calling itself on a smaller version of the same problem. It needs a base case that is answered directly, such as the factorial of 0 being 1, and every recursive call must move closer to that base case, or the function never stops.'],
  ['Why is the sky blue?', 'Sunlight contains all colours. As it passes through the air, the molecules scatter short wavelengths, blue and violet, much more strongly than long ones like red. That scattered blue light reaches our eyes from every direction of the sky. At sunset the light crosses much more air, most of the blue is scattered away, and the remaining light looks orange and red.'],
  ['What is an average, and when is the median better?', 'The mean adds all values and divides by how many there are. The median is the middle value once they are sorted. When a few values are extreme, such as one very large salary in a small company, the mean is pulled toward them while the median stays with the typical value, so the median describes the typical case better.'],
  ['What does a compiler do?', 'A compiler translates a program from the language it was written in into another form, usually machine code that a processor can run directly. Along the way it checks the program for errors such as wrong types, and it optimises the code, for example by removing calculations whose results are never used.'],
  ['What is a fraction in lowest terms?', 'A fraction is in lowest terms when the numerator and denominator share no common factor other than 1. To get there, divide both by their greatest common divisor: 18/24 has gcd 6, so it becomes 3/4.'],
  ['How do vaccines work?', 'A vaccine shows the immune system a harmless version or piece of a germ, so the body learns to recognise it and builds memory cells. If the real germ arrives later, the immune system responds much faster and more strongly, often before the person becomes seriously ill.'],
  ['What is a version control system?', 'A version control system records the history of changes to a set of files. Each saved change, called a commit, says what changed, who changed it and why. You can compare versions, go back to an earlier one, and work on separate branches that are merged later.'],
  ['What is the water cycle?', 'Water evaporates from seas, lakes and plants, rises as vapour, cools and condenses into clouds, and falls back as rain or snow. It then flows over land in rivers, soaks into the ground, or is taken up by plants, and eventually evaporates again.'],
  ['What is an index in a database?', 'An index is an extra data structure, often a B-tree, that keeps the values of one or more columns in sorted order with pointers to the rows. It lets the database find matching rows without reading the whole table, at the cost of extra space and slower writes, since every insert must also update the index.'],
  ['Why do leaves change colour in autumn?', 'Leaves are green because of chlorophyll. In autumn, as days shorten, many trees stop making it and break it down to recover nutrients. Yellow and orange pigments that were there all along become visible, and some trees also make red pigments as the leaf shuts down.'],
  ['What is a unit test?', 'A unit test checks one small piece of code, such as a single function, against a known answer. It runs quickly and on its own, so you can run hundreds of them after every change and learn at once if something broke. A good unit test fails for exactly one reason and its name says what that reason is.'],
  ['What is inflation?', 'Inflation is the general rise of prices over time, which means each unit of money buys a little less. It is usually measured as the yearly percentage change of the price of a typical basket of goods and services. Moderate, predictable inflation is considered normal; very high inflation makes planning hard.'],
  ['What is a floating-point number?', 'A floating-point number stores a value as a sign, a fraction and an exponent, like scientific notation in base two. That covers a huge range of magnitudes with a fixed number of bits, but most decimal fractions, such as 0.1, cannot be stored exactly, so small rounding errors appear in arithmetic.'],
  ['How does a refrigerator keep food cold?', 'A refrigerator pumps heat out of its inside. A fluid called the refrigerant evaporates in pipes inside the cabinet, absorbing heat; a compressor then squeezes the vapour, which becomes hot, and it gives that heat away through the coils at the back before flowing back in as a liquid to start again.'],
  ['What is a leap year?', 'A leap year has 366 days, with 29 February added, to keep the calendar in step with the Earth\'s orbit, which takes about 365.2422 days. In the Gregorian calendar, a year is a leap year if it is divisible by 4, except years divisible by 100, which are leap years only if also divisible by 400. So 2000 was a leap year and 1900 was not.'],
  ['What is an API?', 'An API, an application programming interface, is the set of operations one piece of software offers to others, with the exact form of their inputs and outputs. A web API, for instance, might accept a request for a city name and return the current temperature as JSON. Programs that follow the interface do not need to know how it is implemented.'],
  ['What is the Pythagorean theorem?', 'In a right triangle, the square of the longest side, the hypotenuse, equals the sum of the squares of the other two sides: a² + b² = c². A triangle with sides 3, 4 and 5 is the classic example, since 9 + 16 = 25.'],
  ['How do I read a nutrition label?', 'Start with the serving size, because every other number refers to it. Then look at energy, fats, sugars, salt and fibre per serving and per 100 grams; the per-100-gram column lets you compare products fairly. Percent daily values show how much of a typical daily amount one serving provides.'],
];

/** Everyday questions, each with possible answers and a fitting reaction to each answer. */
export const SMALL_TALK = [
  ['How was your weekend?', [
    ['Quiet, which was exactly what I needed. I read most of a novel and cooked a big pot of soup.', 'That sounds perfect, honestly.'],
    ['Busy. We helped my sister move flats, and I think I carried about forty boxes.', 'Oof. Your back must be thrilled.'],
    ['Lovely. We took the early train to the coast and walked until our legs gave out.', 'I am jealous. I have not seen the sea in months.'],
  ]],
  ['Did you get caught in the rain yesterday?', [
    ['Completely. My umbrella turned inside out at the first corner.', 'Ha, mine did that last week.'],
    ['No, I stayed in the library until it passed.', 'Smart. I was soaked.'],
    ['Only a little. I ran the last stretch.', 'Good thing you are quick.'],
  ]],
  ['Are you going to the market on Saturday?', [
    ['Probably, if I finish my work on Friday. I need vegetables for the week.', 'Maybe I will see you there, then.'],
    ['I was there last week. The bread stall alone is worth the trip.', 'I keep hearing about that bread stall.'],
    ['Not this time, I promised to help at the school fair.', 'That is kind of you. Good luck with it.'],
  ]],
  ['How is the new job going?', [
    ['Better than I expected. The people are kind and the work makes sense.', 'I am glad. You deserved a good one.'],
    ['Still learning where everything is, but I like it.', 'It takes a while. Give it a month.'],
    ['Tiring. Ask me again in a month.', 'Fair enough. The first weeks are always the hardest.'],
  ]],
  ['Have you finished the book I lent you?', [
    ['Almost. I slowed down in the middle, but the last chapters are flying by.', 'The ending is worth it, I promise.'],
    ['Yes, and I loved the ending. I will bring it back tomorrow.', 'No hurry. I am glad you liked it.'],
    ['Not yet, sorry. I keep falling asleep after ten pages.', 'Ha, no rush. It is a slow start.'],
  ]],
  ['Have you been to the new café on the corner?', [
    ['Twice already. The soup is good and the coffee is strong.', 'Then that is where we are going next time.'],
    ['Not yet. It always looks full.', 'Try it early in the morning. It is quiet then.'],
  ]],
  ['How is your garden doing?', [
    ['The tomatoes are finally ripening, and the slugs have eaten all the lettuce.', 'The slugs always win the lettuce war.'],
    ['I have more courgettes than I know what to do with. Do you want some?', 'Yes, please. I will make soup.'],
  ]],
];
